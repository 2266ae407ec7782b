"""Transferability estimators: how well frozen features suit target labels, without training.

LogME, H-score (covariance shrunk with Ledoit-Wolf by default) and TransRate on the features;
LEEP and NCE on the source model's class probabilities, for candidates that keep a source
classifier. Written from the papers, in float64 numpy; higher is better.
Why: docs/architecture.md, "Ranking sources".
"""

from __future__ import annotations

import numpy as np

LOGME_MAX_ITERATIONS = 100  # the reference code's cap; it converges in < 20 on real features
LOGME_TOLERANCE = 1e-3  # relative change of alpha/beta that counts as converged
TRANSRATE_EPS = 1e-1  # distortion eps of the coding rate on unit-scale features (paper: small)


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if f.ndim != 2 or len(f) != len(y):
        raise ValueError(f"features {f.shape} and labels {y.shape} do not match")
    return f.reshape(len(f), -1), y


def _onehot(y: np.ndarray) -> np.ndarray:
    classes = np.unique(y)
    return (y[:, None] == classes[None, :]).astype(np.float64)


def logme_fit(f: np.ndarray, t: np.ndarray, svd=None) -> tuple[float, float, float]:
    """Evidence per sample of one target column `t` and the (alpha, beta) that maximise it.

    The fixed point of You et al. (Algorithm 1) on the thin SVD f = U S V^T: with sigma = S^2,
    gamma = sum(beta sigma / (alpha + beta sigma)), m the posterior mean,
    alpha <- gamma / |m|^2 and beta <- (n - gamma) / |t - f m|^2.
    The evidence is then evaluated exactly at the final (alpha, beta). `svd`: the thin SVD of f,
    computed once for all label columns."""
    n, d = f.shape
    u, s, vt = svd if svd is not None else np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    proj = u.T @ t  # t in the left singular basis
    alpha, beta = 1.0, 1.0
    for _ in range(LOGME_MAX_ITERATIONS):
        m, res2 = _posterior(f, t, s, vt, proj, alpha, beta)
        gamma = float(np.sum(beta * sigma / (alpha + beta * sigma)))
        new_alpha = gamma / max(float(m @ m), 1e-12)
        new_beta = (n - gamma) / max(res2, 1e-12)
        done = abs(new_alpha / new_beta - alpha / beta) <= LOGME_TOLERANCE * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    m, res2 = _posterior(f, t, s, vt, proj, alpha, beta)
    # log det(alpha I_d + beta F^T F): the d - rank directions without data contribute log(alpha)
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + (d - len(sigma)) * np.log(alpha)
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - alpha / 2 * float(m @ m)
        - beta / 2 * res2
        - logdet / 2
        - n / 2 * np.log(2 * np.pi)
    )
    return float(evidence / n), alpha, beta


def _posterior(f, t, s, vt, proj, alpha: float, beta: float) -> tuple[np.ndarray, float]:
    """Posterior mean m = beta (alpha I + beta F^T F)^-1 F^T t and the residual |t - F m|^2."""
    m = vt.T @ (beta * s * proj / (alpha + beta * s**2))
    r = t - f @ m
    return m, float(r @ r)


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: mean over classes of the maximised evidence per sample (You et al. 2021)."""
    f, y = _check(features, labels)
    svd = np.linalg.svd(f, full_matrices=False)
    return float(np.mean([logme_fit(f, t, svd)[0] for t in _onehot(y).T]))


def _shrunk_covariance(f: np.ndarray) -> np.ndarray:
    from sklearn.covariance import LedoitWolf

    return LedoitWolf(assume_centered=False).fit(f).covariance_


def hscore(features: np.ndarray, labels: np.ndarray, shrinkage: bool = True) -> float:
    """H-score tr(cov(f)^-1 cov(g)), g = the class-conditional mean of f (Bao et al. 2019)."""
    f, y = _check(features, labels)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    if shrinkage:  # positive definite after shrinkage: a solve, faster than pinv (BENCHMARKS.md)
        # LedoitWolf normalises by 1/n, so the between-class covariance does too
        cov_g = np.atleast_2d(np.cov(g, rowvar=False, bias=True))
        return float(np.trace(np.linalg.solve(np.atleast_2d(_shrunk_covariance(f)), cov_g)))
    cov_f, cov_g = np.atleast_2d(np.cov(f, rowvar=False)), np.atleast_2d(np.cov(g, rowvar=False))
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def coding_rate(z: np.ndarray, eps: float = TRANSRATE_EPS) -> float:
    """R(Z, eps) = 1/2 log det(I_d + d / (n eps^2) Z^T Z), computed on the smaller Gram matrix
    (det(I_d + c Z^T Z) = det(I_n + c Z Z^T))."""
    n, d = z.shape
    gram = z.T @ z if d <= n else z @ z.T
    _, logdet = np.linalg.slogdet(np.eye(len(gram)) + d / (n * eps**2) * gram)
    return 0.5 * float(logdet)


def transrate(features: np.ndarray, labels: np.ndarray, eps: float = TRANSRATE_EPS) -> float:
    """TransRate = R(Z) - sum_c n_c/n R(Z_c) (Huang et al. 2022) on centred, unit-scale features
    (the coding rate depends on the scale; scaling makes candidates comparable)."""
    f, y = _check(features, labels)
    z = f - f.mean(0, keepdims=True)
    z = z / max(float(np.sqrt(np.mean(np.sum(z**2, 1)))), 1e-12)
    within = sum((y == c).mean() * coding_rate(z[y == c], eps) for c in np.unique(y))
    return coding_rate(z, eps) - float(within)


def _joint(source_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical P(y, z) (targets x source classes) and the per-sample soft source labels."""
    theta = np.asarray(source_probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    onehot = _onehot(y)
    return onehot.T @ theta / len(y), onehot


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP = 1/n sum_i log sum_z P(y_i | z) theta_i(z) (Nguyen et al. 2020). Higher is better."""
    theta = np.asarray(source_probs, dtype=np.float64)
    joint, onehot = _joint(theta, labels)
    cond = joint / np.maximum(joint.sum(0, keepdims=True), 1e-300)  # P(y | z)
    expected = theta @ cond.T  # n x targets: sum_z P(y | z) theta_i(z)
    return float(np.mean(np.log(np.maximum((expected * onehot).sum(1), 1e-300))))


def nce(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """NCE = -H(Y | Z) with Z the source model's hard predictions (Tran et al. 2019)."""
    theta = np.asarray(source_probs, dtype=np.float64)
    hard = np.eye(theta.shape[1])[theta.argmax(1)]
    joint, _ = _joint(hard, labels)
    pz = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / np.maximum(pz, 1e-300))[nz])))


FEATURE_ESTIMATORS = {"logme": logme, "hscore": hscore, "transrate": transrate}
SOURCE_ESTIMATORS = {"leep": leep, "nce": nce}
