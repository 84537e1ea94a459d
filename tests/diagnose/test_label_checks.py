"""Label issues versus confusable classes, on hand-made probability matrices (no model), and the
probe re-fitted without the flagged images."""

from pathlib import Path

import numpy as np

from headstart.diagnose import label_checks as lc
from headstart.diagnose.features import cross_val_probe, reprobe_without

CLASSES = ["a", "b", "c", "d", "e"]


def _confident(labels: np.ndarray, k: int, p: float = 0.97) -> np.ndarray:
    probs = np.full((len(labels), k), (1 - p) / (k - 1))
    probs[np.arange(len(labels)), labels] = p
    return probs


def _paths(n: int) -> list[Path]:
    return [Path(f"img{i}.png") for i in range(n)]


def _flip(labels: np.ndarray, share: float, k: int, seed: int = 0):
    """Given labels with ``share`` of them moved to a random other class; the probe still sees the truth."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), int(share * len(labels)), replace=False)
    given = labels.copy()
    given[flipped] = (given[flipped] + rng.integers(1, k, len(flipped))) % k
    return given, set(flipped.tolist())


def _by_check(findings):
    return {f.check: f for f in findings}


def test_a_symmetric_confused_pair_is_confusion_not_label_issues():
    labels = np.repeat(np.arange(5), 100)
    probs = _confident(labels, 5)
    rng = np.random.default_rng(0)
    for own, other in ((0, 1), (1, 0)):  # 30 % of each class looks confidently like the other one
        rows = rng.choice(np.flatnonzero(labels == own), 30, replace=False)
        probs[rows] = 0.01
        probs[rows, other] = 0.96
    found = _by_check(lc.check_label_issues(labels, probs, _paths(len(labels)), CLASSES))
    assert set(found) == {"confusable-classes"}
    pair = found["confusable-classes"].data["pairs"][0]
    assert pair["classes"] == ["a", "b"] and pair["flagged"] == [30, 30] and pair["images"] == 200
    assert (
        found["confusable-classes"].severity == "medium" and "not wrong labels" in found["confusable-classes"].evidence
    )


def test_a_one_way_flow_between_two_classes_stays_label_issues():
    labels = np.repeat(np.arange(5), 100)
    probs = _confident(labels, 5)
    given = labels.copy()
    given[:30] = 1  # 30 images of class a labelled b, none the other way: wrong labels, not confusion
    found = _by_check(lc.check_label_issues(given, probs, _paths(len(labels)), CLASSES))
    assert "confusable-classes" not in found
    assert {r["path"] for r in found["label-issues"].data["images"]} == {f"img{i}.png" for i in range(30)}


def test_isolated_confident_flips_are_listed_with_a_severity_from_their_share():
    labels = np.repeat(np.arange(5), 100)
    for share, severity in ((0.02, "low"), (0.06, "medium"), (0.15, "high")):
        given, flipped = _flip(labels, share, 5)
        found = _by_check(lc.check_label_issues(given, _confident(labels, 5), _paths(len(labels)), CLASSES))
        assert set(found) == {"label-issues"}, share
        issue = found["label-issues"]
        assert {int(r["path"][3:-4]) for r in issue.data["images"]} == flipped
        assert issue.severity == severity
        row = issue.data["images"][0]
        i = int(row["path"][3:-4])
        assert row["given"] == CLASSES[given[i]] and row["suggested"] == CLASSES[labels[i]]
    assert lc.EXPECTED_PRECISION["high"] in issue.evidence


def test_unsure_disagreements_are_not_listed():
    labels = np.repeat(np.arange(5), 100)
    given, flipped = _flip(labels, 0.1, 5)
    probs = _confident(labels, 5, p=0.6)
    probs[np.arange(len(labels)), given] = np.maximum(
        probs[np.arange(len(labels)), given], 0.3
    )  # the probe half agrees
    probs /= probs.sum(1, keepdims=True)
    found = _by_check(lc.check_label_issues(given, probs, _paths(len(labels)), CLASSES))
    assert "label-issues" not in found


def test_two_classes_never_count_as_confusable():
    labels = np.repeat(np.arange(2), 100)
    given, flipped = _flip(labels, 0.15, 2)
    found = _by_check(lc.check_label_issues(given, _confident(labels, 2), _paths(len(labels)), ["x", "y"]))
    assert set(found) == {"label-issues"} and found["label-issues"].severity == "high"
    assert lc.confusable_pairs(given, _confident(labels, 2), sorted(flipped)) == []


def test_clean_labels_give_no_finding():
    labels = np.repeat(np.arange(5), 40)
    assert lc.check_label_issues(labels, _confident(labels, 5), _paths(len(labels)), CLASSES) == []


def test_reprobe_without_the_flagged_images_flags_more_precisely():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1.0, (4, 16))
    labels = np.repeat(np.arange(4), 80)
    features = centres[labels] + rng.normal(0, 1.0, (len(labels), 16))
    given, flipped = _flip(labels, 0.2, 4, seed=1)
    probe = cross_val_probe(features, given, 4)
    first = lc.find_label_issues(given, probe.pred_probs)
    again = reprobe_without(probe, features, first)
    second = lc.find_label_issues(given, again.pred_probs)
    precision = [len(set(f.tolist()) & flipped) / len(f) for f in (first, second)]
    assert precision[1] > precision[0]
    assert again.pred_probs.shape == probe.pred_probs.shape and np.allclose(again.pred_probs.sum(1), 1)
    assert probe.kept_error is None and 0 <= again.kept_error < 0.5
    assert reprobe_without(probe, features, []) is probe


def test_a_weak_probe_keeps_the_finding_at_medium():
    labels = np.repeat(np.arange(5), 100)
    given, _ = _flip(labels, 0.15, 5)
    probs = _confident(labels, 5)
    strong = _by_check(lc.check_label_issues(given, probs, _paths(len(labels)), CLASSES, probe_error=0.05))
    weak = _by_check(lc.check_label_issues(given, probs, _paths(len(labels)), CLASSES, probe_error=0.2))
    assert strong["label-issues"].severity == "high"
    assert weak["label-issues"].severity == "medium" and "errs on 20%" in weak["label-issues"].evidence
