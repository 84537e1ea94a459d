"""Transferability estimators: how well a frozen backbone's features fit the target labels.

Each takes ``features`` (N, D) float array and ``labels`` (N,) int array (classes 0..C-1) and
returns one number, higher = expected to transfer better. They are written here (numpy and
scikit-learn) because no maintained package ships them with a stable API; each follows its paper.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ESTIMATORS", "logme", "hscore", "nleep", "linear_probe_accuracy", "knn_accuracy", "cv_folds"]


def _prep(features, labels) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if f.ndim != 2 or len(f) != len(y):
        raise ValueError(f"features must be (N, D) with N == len(labels); got {f.shape} and {y.shape}")
    if len(np.unique(y)) < 2:
        raise ValueError("transferability needs at least 2 classes in the labels")
    return f, y


def _evidence(y: np.ndarray, u: np.ndarray, sigma: np.ndarray, n: int, d: int) -> float:
    """Maximised log evidence / n for one target column ``y`` (You et al. 2021, Algorithm 1).

    Works in the left singular basis of F (F = U S V^T, sigma = S^2): with z = U^T y and
    t = alpha / beta, |m|^2 = sum sigma z^2 / (t + sigma)^2 and |y - F m|^2 =
    sum t^2 z^2 / (t + sigma)^2 + |y|^2 - |z|^2 -- the same quantities as the reference code's
    D x D eigendecomposition, without forming F^T F."""
    z2 = (u.T @ y) ** 2
    outside = max(float(y @ y) - z2.sum(), 0.0)
    alpha, beta = 1.0, 1.0
    for _ in range(11):
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum()
        m2 = (sigma * z2 / (t + sigma) ** 2).sum()
        res2 = (t**2 * z2 / (t + sigma) ** 2).sum() + outside
        alpha = gamma / (m2 + 1e-5)
        beta = (n - gamma) / (res2 + 1e-5)
        if abs(alpha / beta - t) / t < 1e-2:
            break
    k = len(sigma)  # as in the reference: new alpha, beta with the last step's |m|^2 and residual
    evidence = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * np.sum(np.log(alpha + beta * sigma))
        - 0.5 * (d - k) * np.log(alpha)  # the zero eigenvalues of F^T F when N < D
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * np.log(2 * np.pi)
    )
    return float(evidence / n)


def logme(features, labels) -> float:
    """LogME: the log marginal evidence of a Bayesian linear model from features to one-hot labels,
    maximised over its prior/noise precisions by the fixed-point iteration, averaged over classes.

    You, Liu, Wang, Long. "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021 (https://arxiv.org/abs/2102.11005). Follows the authors' reference
    implementation (at most 11 fixed-point steps, stop when alpha/beta moves < 1%, evidence / N)."""
    f, y = _prep(features, labels)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    return float(np.mean([_evidence((y == c).astype(np.float64), u, sigma, n, d) for c in np.unique(y)]))


def hscore(features, labels) -> float:
    """H-score tr(cov(f)^-1 cov(E[f|y])) with a Ledoit-Wolf shrunk feature covariance.

    Bao, Li, Huang, Zhang et al. "An Information-Theoretic Approach to Transferability in Task
    Transfer Learning", ICIP 2019; shrinkage as in Ibrahim, Ponomareva, Mazumder. "Newer is not
    always better: Rethinking transferability metrics, their peculiarities, stability and
    performance", ECML-PKDD 2022 (the plain estimate is unstable when D is close to N).

    The shrunk covariance (1 - s) F^T F / N + s mu I (scikit-learn's Ledoit-Wolf ``s``, mu the mean
    variance) is inverted in the singular basis of F rather than as a D x D matrix: the class means
    lie in F's row space, so the trace needs only the N singular pairs. Same value, about 20x faster
    at N = 200, D = 1280 (the D x D route took 0.75 s per candidate, a third of rank's scoring)."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    f, y = _prep(features, labels)
    n, d = f.shape
    f = f - f.mean(0, keepdims=True)
    shrink = float(ledoit_wolf_shrinkage(f, assume_centered=True))
    ridge = shrink * float((f**2).sum()) / (n * d)  # s * mu
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    _, sv, vt = np.linalg.svd(f, full_matrices=False)
    eig = (1.0 - shrink) * sv**2 / n + ridge  # the shrunk covariance's eigenvalues on F's row space
    proj2 = ((g @ vt.T) ** 2).sum(0)
    tol = 1e-10 * eig.max()  # pseudo-inverse semantics when there is no shrinkage (N >> D)
    inside = float((proj2[eig > tol] / eig[eig > tol]).sum())
    outside = max(float((g**2).sum()) - float(proj2.sum()), 0.0) / ridge if ridge > tol else 0.0
    return (inside + outside) / n


def nleep(features, labels, *, seed: int = 0, components_per_class: int = 5, variance: float = 0.8) -> float:
    """N-LEEP: LEEP computed on the soft assignments of a Gaussian mixture fitted to the PCA-reduced
    features (instead of a source classifier's outputs).

    Li, Jia, Zhou, Pan et al. "Ranking Neural Checkpoints", CVPR 2021
    (https://arxiv.org/abs/2011.11200): PCA keeping 80% of the variance, a GMM with 5x as many
    components as classes; LEEP from Nguyen et al., ICML 2020."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    f, y = _prep(features, labels)
    n_classes = int(y.max()) + 1
    z = PCA(n_components=variance, svd_solver="full", random_state=seed).fit_transform(f)
    z = z[:, : max(1, min(z.shape[1], 64))]
    k = max(2, min(components_per_class * len(np.unique(y)), len(f) // 2))
    gmm = GaussianMixture(k, covariance_type="diag", random_state=seed, reg_covar=1e-4, max_iter=200).fit(z)
    theta = gmm.predict_proba(z)  # (N, K) "source label" distribution
    joint = np.zeros((n_classes, k))
    np.add.at(joint, y, theta)
    joint /= len(f)
    cond = joint / np.maximum(joint.sum(0, keepdims=True), 1e-12)  # P(y | z)
    eep = (theta * cond[y]).sum(1)
    return float(np.mean(np.log(np.maximum(eep, 1e-12))))


def cv_folds(labels, max_folds: int = 5) -> int:
    """Stratified folds the smallest class allows (2..max_folds)."""
    counts = np.bincount(np.asarray(labels).astype(np.int64))
    counts = counts[counts > 0]
    return int(max(2, min(max_folds, counts.min())))


def linear_probe_accuracy(features, labels, *, seed: int = 0, folds: int | None = None) -> float:
    """Leave-one-out accuracy of a ridge-regression linear probe on standardised features, the
    regularisation chosen from a log grid by the same leave-one-out criterion.

    A linear probe is the linear evaluation protocol of Kornblith, Shlens, Le. "Do Better ImageNet
    Models Transfer Better?", CVPR 2019 (https://arxiv.org/abs/1805.08974), which fits a logistic
    regression per fold. The least-squares probe gives every leave-one-out fit in closed form
    from one decomposition (scikit-learn's ``RidgeClassifierCV``, Rifkin & Lippert 2007), so it
    costs milliseconds where k-fold logistic regression cost about 13 s per candidate on a 2-core
    CPU (``benchmarks/rank_quality.py``, 200 images, 1280 features). ``seed`` and ``folds`` are
    accepted for a uniform estimator signature: leave-one-out has no randomness and no folds."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.preprocessing import StandardScaler

    f, y = _prep(features, labels)
    f = StandardScaler().fit_transform(f)
    alphas = np.logspace(-1, 5, 7) * (f.shape[1] / 100.0)  # scaled with the feature count
    clf = RidgeClassifierCV(alphas=alphas, scoring="accuracy").fit(f, y)
    return float(clf.best_score_)


def knn_accuracy(features, labels, *, seed: int = 0, folds: int | None = None, k: int = 10) -> float:
    """Accuracy of a cosine k-NN classifier (k = 10, distance-weighted) under stratified k-fold
    cross-validation, the non-parametric probe of Wu et al. "Unsupervised Feature Learning via
    Non-Parametric Instance Discrimination", CVPR 2018."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    f, y = _prep(features, labels)
    n_folds = folds or cv_folds(y)
    neighbours = max(1, min(k, int(len(y) * (n_folds - 1) / n_folds) - 1))
    clf = KNeighborsClassifier(n_neighbors=neighbours, metric="cosine", weights="distance")
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, f, y, cv=cv, scoring="accuracy").mean())


# name -> (function, takes a seed)
ESTIMATORS = {
    "logme": (logme, False),
    "hscore": (hscore, False),
    "nleep": (nleep, True),
    "linear_probe": (linear_probe_accuracy, True),
    "knn": (knn_accuracy, True),
}


def score_all(features, labels, names=tuple(ESTIMATORS), *, seed: int = 0) -> dict[str, float]:
    """Every estimator in ``names`` on the same features."""
    out = {}
    for name in names:
        fn, seeded = ESTIMATORS[name]
        out[name] = fn(features, labels, seed=seed) if seeded else fn(features, labels)
    return out
