import numpy as np
import pytest

from headstart.select.combine import combine_scores, relative_accuracy, zscores
from headstart.select.estimators import ESTIMATORS, hscore, logme, score_all


def _separable(seed=0, n_per=30, d=32, classes=3):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per)
    f = rng.normal(size=(len(y), d))
    f[:, 0] += 4 * y  # the class is readable from one direction
    return f, y, rng


def _reference_logme(f, y):
    """The authors' reference algorithm (github.com/thuml/LogME, LogME.py), D x D eigendecomposition."""
    f = f.astype(np.float64)
    fh = f
    f = f.T
    d, n = f.shape
    v, s, vh = np.linalg.svd(f @ fh, full_matrices=True)
    out = []
    for c in range(y.max() + 1):
        y_ = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        tmp = vh @ (f @ y_)
        for _ in range(11):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            alpha_de = (m * m).sum()
            alpha = gamma / (alpha_de + 1e-5)
            beta_de = ((y_ - fh @ m) ** 2).sum()
            beta = (n - gamma) / (beta_de + 1e-5)
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * s))
              - beta / 2 * beta_de - alpha / 2 * alpha_de - n / 2 * np.log(2 * np.pi))
        out.append(ev / n)
    return float(np.mean(out))


@pytest.mark.parametrize("shape", [(90, 32), (40, 100)])  # N > D and N < D
def test_logme_matches_reference_algorithm(shape):
    rng = np.random.default_rng(1)
    f = rng.normal(size=shape)
    y = np.arange(shape[0]) % 2
    f[:, 0] += 2 * y
    assert logme(f, y) == pytest.approx(_reference_logme(f, y), rel=1e-9)


def _dense_hscore(f, y):
    """H-score the direct way: a D x D Ledoit-Wolf covariance and its pseudo-inverse."""
    from sklearn.covariance import LedoitWolf

    f = f - f.mean(0, keepdims=True)
    cov_f = LedoitWolf(assume_centered=True).fit(f).covariance_
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    return float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ (g.T @ g / len(f))))


@pytest.mark.parametrize("shape", [(40, 96), (120, 16), (90, 90)])
def test_hscore_matches_the_dense_computation(shape):
    n, d = shape
    rng = np.random.default_rng(1)
    y = np.arange(n) % 4
    f = np.maximum(rng.normal(size=(n, d)) + 0.5 * y[:, None] * rng.normal(size=d), 0)  # ReLU-like, rank < D
    assert hscore(f, y) == pytest.approx(_dense_hscore(f, y), rel=1e-8)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_prefers_true_labels_to_shuffled(name):
    f, y, rng = _separable()
    shuffled = rng.permutation(y)
    fn, seeded = ESTIMATORS[name]
    kw = {"seed": 0} if seeded else {}
    assert fn(f, y, **kw) > fn(f, shuffled, **kw) + 0.05


def test_estimators_prefer_more_informative_features():
    f, y, rng = _separable()
    weak = f.copy()
    weak[:, 0] = rng.normal(size=len(y)) + 0.5 * y  # the signal is much weaker
    good, bad = score_all(f, y), score_all(weak, y)
    for name in ESTIMATORS:
        assert good[name] > bad[name], name


def test_estimators_are_deterministic_with_a_seed():
    f, y, _ = _separable()
    assert score_all(f, y, seed=3) == score_all(f, y, seed=3)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="at least 2 classes"):
        logme(np.ones((10, 4)), np.zeros(10))


def test_combine_standardises_and_weights():
    assert zscores([1.0, 2.0, 3.0]) == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-4)
    assert zscores([2.0, 2.0]) == [0.0, 0.0]
    rows = [{"a": 0.1, "b": 10.0}, {"a": 0.2, "b": 30.0}, {"a": 0.3, "b": 20.0}]
    only_a = combine_scores(rows, {"a": 1.0})
    assert only_a[2] > only_a[1] > only_a[0]
    both = combine_scores(rows, {"a": 1.0, "b": 1.0})
    assert both[0] < both[1] and both[0] < both[2]
    assert relative_accuracy([0.5, 1.0, 0.8]) == [0.5, 1.0, 0.8]
    with pytest.raises(ValueError, match="none of the weighted estimators"):
        combine_scores(rows, {"zzz": 1.0})


def test_default_combination_is_the_mean_z_of_logme_ridge_and_knn():
    rows = [{"logme": 0.1, "linear_probe": 0.9, "knn": 0.7, "hscore": 50.0},
            {"logme": 0.3, "linear_probe": 0.8, "knn": 0.9, "hscore": 1.0},
            {"logme": 0.2, "linear_probe": 0.7, "knn": 0.8, "hscore": 9.0}]
    z = {k: zscores([r[k] for r in rows]) for k in ("logme", "linear_probe", "knn")}
    expected = [sum(z[k][i] for k in z) / 3 for i in range(3)]
    assert combine_scores(rows) == pytest.approx(expected)  # H-score is reported, not combined
    # ranking with fewer estimators combines the ones computed
    assert combine_scores([{"logme": r["logme"]} for r in rows]) == pytest.approx(z["logme"])
