"""Each estimator against an independent computation, plus invariances and label-vs-noise order."""

from __future__ import annotations

import numpy as np
import pytest

from tlbench.ranking import estimators as E


def _data(n=60, d=8, classes=3, seed=0, signal=3.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, d)) * signal
    return centres[y] + rng.normal(size=(n, d)), y


def _direct_evidence(f, t, alpha, beta):
    """log N(t | 0, I/beta + F F^T/alpha) / n with numpy's slogdet and solve (no SVD, no fixed point)."""
    n = len(t)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return (-0.5 * (n * np.log(2 * np.pi) + logdet + t @ np.linalg.solve(cov, t))) / n


@pytest.mark.parametrize("n,d", [(40, 6), (12, 30)])  # more samples than dims, and fewer
def test_logme_evidence_is_the_closed_form_marginal_likelihood_at_its_maximum(n, d):
    f, y = _data(n=n, d=d)
    t = (y == 1).astype(float)
    evidence, alpha, beta = E.logme_fit(f, t)
    assert evidence == pytest.approx(_direct_evidence(f, t, alpha, beta), rel=1e-9, abs=1e-9)
    # the fixed point is a maximum of the evidence: moving alpha or beta does not improve it
    for a, b in [
        (alpha * 1.3, beta),
        (alpha / 1.3, beta),
        (alpha, beta * 1.3),
        (alpha, beta / 1.3),
    ]:
        assert _direct_evidence(f, t, a, b) <= evidence + 1e-6


def test_logme_is_the_mean_over_one_hot_columns():
    f, y = _data()
    cols = [E.logme_fit(f, (y == c).astype(float))[0] for c in range(3)]
    assert E.logme(f, y) == pytest.approx(np.mean(cols))


def test_hscore_plain_matches_the_formula_on_a_tiny_matrix():
    f = np.array([[1.0, 2.0], [2.0, 1.0], [4.0, 5.0], [5.0, 3.0], [0.0, 1.0]])
    y = np.array([0, 0, 1, 1, 0])
    mu0, mu1 = f[y == 0].mean(0), f[y == 1].mean(0)
    g = np.where(y[:, None] == 0, mu0, mu1)
    cf = (f - f.mean(0)).T @ (f - f.mean(0)) / 4  # unbiased covariance, written out
    cg = (g - g.mean(0)).T @ (g - g.mean(0)) / 4
    assert E.hscore(f, y, shrinkage=False) == pytest.approx(np.trace(np.linalg.inv(cf) @ cg))


def test_transrate_coding_rate_agrees_with_the_d_by_d_determinant():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 9))  # d > n: computed on the 5 x 5 Gram matrix
    n, d = z.shape
    direct = 0.5 * np.linalg.slogdet(np.eye(d) + d / (n * 0.1**2) * z.T @ z)[1]
    assert E.coding_rate(z, 0.1) == pytest.approx(direct)


def test_leep_and_nce_by_hand():
    theta = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 0])
    joint = np.array([[0.9 + 0.6, 0.1 + 0.4], [0.2, 0.8]]) / 3
    cond = joint / joint.sum(0)
    want = np.mean([np.log(theta[i] @ cond[y[i]]) for i in range(3)])
    assert E.leep(theta, y) == pytest.approx(want)
    # hard labels z = [0, 1, 0] predict y exactly: H(Y|Z) = 0
    assert E.nce(theta, y) == pytest.approx(0.0)
    assert E.nce(theta, np.array([0, 0, 1])) < 0


@pytest.mark.parametrize("name", ["logme", "hscore", "transrate"])
def test_feature_estimators_ignore_sample_order_and_rank_signal_above_noise(name):
    fn = E.FEATURE_ESTIMATORS[name]
    f, y = _data(n=45, d=10)
    perm = np.random.default_rng(3).permutation(len(y))
    assert fn(f[perm], y[perm]) == pytest.approx(fn(f, y), rel=1e-6, abs=1e-9)
    noise = np.random.default_rng(4).normal(size=f.shape)
    assert fn(f, y) > fn(noise, y)


@pytest.mark.parametrize("name", ["leep", "nce"])
def test_source_estimators_ignore_sample_order_and_rank_signal_above_noise(name):
    fn = E.SOURCE_ESTIMATORS[name]
    rng = np.random.default_rng(5)
    y = np.arange(60) % 3
    informative = np.eye(4)[y] * 0.8 + 0.05  # source class y predicts target class y
    noise = rng.dirichlet(np.ones(4), size=60)
    perm = rng.permutation(60)
    assert fn(informative[perm], y[perm]) == pytest.approx(fn(informative, y))
    assert fn(informative, y) > fn(noise, y)
