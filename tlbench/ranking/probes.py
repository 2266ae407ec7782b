"""Quick classifiers on frozen features: the measured side of the ranking (held-out accuracy).

- linear probe: logistic regression on standardised features, a fixed budget (lbfgs, at most
  PROBE_MAX_ITER iterations, C = PROBE_C) so every candidate gets the same effort;
- kNN: k nearest neighbours by cosine similarity (L2-normalised features), k = min(KNN_K, n_train).
"""

from __future__ import annotations

import warnings

import numpy as np

PROBE_C = (
    1.0  # sklearn's default L2 strength; on standardised features it needs no tuning per model
)
PROBE_MAX_ITER = 500  # lbfgs iterations; a probe that has not converged by then gets what it has
KNN_K = 5


def linear_probe(train_x, train_y, val_x, val_y, seed: int = 0) -> float:
    """Validation accuracy of a standardised logistic regression trained on the train features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER, random_state=seed),
    )
    with warnings.catch_warnings():  # the fixed budget is the point; say nothing when it binds
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float(clf.score(np.asarray(val_x, dtype=np.float64), np.asarray(val_y)))


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(train_x, train_y, val_x, val_y) -> float:
    """Validation accuracy of a cosine k-nearest-neighbour vote."""
    from sklearn.neighbors import KNeighborsClassifier

    k = min(KNN_K, len(train_y))
    clf = KNeighborsClassifier(n_neighbors=k).fit(_unit(train_x), np.asarray(train_y))
    return float(clf.score(_unit(val_x), np.asarray(val_y)))
