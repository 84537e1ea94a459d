"""The detection confusion matrix (with background) by hand and its invariants on random data, the
curves' shapes, and the plots written as PNG files."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.tasks.detection.matching import confusion_matrix, match_detections, pr_curves
from headstart.tasks.detection.metrics import coco_metrics
from headstart.tasks.detection.plots import (
    plot_confusion_matrix,
    plot_f1_confidence,
    plot_learning_curves,
    plot_pr_curves,
)
from tests.tasks.detection.synthetic import detection_set

B = ["a", "b"]
PNG = b"\x89PNG\r\n\x1a\n"


def _case():
    """a at A (found), b at B (taken for an a), a at C (found only at score .1), b at E (ignored)."""
    A, Bb, C, E, far = [0, 0, 40, 40], [100, 0, 140, 40], [200, 0, 240, 40], [0, 100, 40, 140], [300, 300, 340, 340]
    gt = [{"image_id": 1, "width": 640, "height": 480, "boxes": np.array([A, Bb, C, E], float),
           "labels": np.array([0, 1, 0, 1]), "ignore": np.array([False, False, False, True])}]
    dt = [{"image_id": 1, "boxes": np.array([A, Bb, far, E, E, C], float),
           "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1]), "labels": np.array([0, 0, 1, 1, 0, 0])}]
    return gt, dt


def test_confusion_matrix_by_hand():
    gt, dt = _case()
    # rows: true a, b, background (FP); columns: predicted a, b, background (missed)
    # a on A: TP; a on B: b taken for a; b far: FP; b on E: ignored, dropped; a on E: an FP of a (E is a b);
    # at conf .3 the a on C is left out, so C is missed
    assert confusion_matrix(gt, dt, B, conf=0.3).tolist() == [[1, 0, 1], [1, 0, 0], [1, 1, 0]]
    assert confusion_matrix(gt, dt, B, conf=0.0).tolist() == [[2, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert confusion_matrix(gt, dt, B, conf=0.95).tolist() == [[0, 0, 2], [0, 0, 1], [0, 0, 0]]
    # None: the F1-best threshold. Counted (b on E is ignored), 3 boxes: .9 TP -> F1 2/4; .8, .7, .5 FP;
    # .1 TP -> 4/8: a tie, which goes to the higher threshold .9
    assert confusion_matrix(gt, dt, B).tolist() == [[1, 0, 1], [0, 0, 1], [0, 0, 0]]
    assert confusion_matrix(gt, dt, B, conf=0.3).dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1])
def test_confusion_matrix_agrees_with_the_metrics(seed):
    ground_truth, detections = detection_set(seed, n_images=30, n_classes=3)
    classes = ["x", "y", "z"]
    m = coco_metrics(ground_truth, detections, classes)
    cm = confusion_matrix(ground_truth, detections, classes, conf=m["conf_threshold"])
    assert cm.shape == (4, 4) and cm[3, 3] == 0
    for k, name in enumerate(classes):
        pc = m["per_class"][name]
        assert cm[k].sum() == pc["n_boxes"]  # every counted box once: found, confused or missed
        assert cm[k, k] == round(pc["recall"] * pc["n_boxes"])  # the diagonal: the true positives
        assert cm[:3, k].sum() + cm[3, k] == round(cm[k, k] / pc["precision"])  # column: kept detections of k
    assert np.trace(cm[:3, :3]) / cm[:3].sum() == pytest.approx(m["recall_at_threshold"])


def test_pr_curves_shapes_and_values():
    gt, dt = _case()
    curves = pr_curves(gt, dt, B + ["c"])
    assert curves["precision"].shape == (3, 101) and curves["recall"].shape == (101,)
    assert curves["f1_at"].shape == (3, 1001) and curves["f1_all"].shape == (1001,)
    assert np.isnan(curves["ap"][2]) and np.isnan(curves["precision"][2]).all()  # c has no boxes
    assert curves["ap"][1] == 0.0  # b's one counted box, B, is never found as a b
    assert curves["n_gt"].tolist() == [2, 1, 0]
    # a: TP .9, FP .8 (on B), FP .5 (on E, a b), TP .1 -> precision 1 up to recall .5, then 2/4
    assert curves["ap"][0] == pytest.approx((51 + 50 * 0.5) / 101)
    assert curves["conf_threshold"] == 0.9 and curves["f1_at_threshold"] == 0.5
    i = np.searchsorted(curves["confidence"], 0.85)  # keep a's .9 only
    assert curves["precision_at"][0, i] == 1.0 and curves["recall_at"][0, i] == 0.5
    same = pr_curves(None, None, B + ["c"], matches=match_detections(gt, dt, B + ["c"]))
    np.testing.assert_array_equal(same["f1_all"], curves["f1_all"])


def test_ap_of_a_class_with_boxes_but_no_detections_is_0():
    gt, dt = _case()
    assert pr_curves(gt, [], B)["ap"].tolist()[0] == 0.0


def test_plots_are_written(tmp_path):
    ground_truth, detections = detection_set(0, n_images=15, n_classes=3)
    classes = ["x", "<y>", "z"]
    curves = pr_curves(ground_truth, detections, classes)
    many = [f"c{i}" for i in range(20)]  # past the legend limit
    many_gt = [{**g, "labels": g["labels"] * 6} for g in ground_truth]
    many_dt = [{**d, "labels": d["labels"] * 6} for d in detections]
    history = [
        {"epoch": 1, "stage": "head", "train_loss": 3.0, "train_loss_box": 1.0, "train_loss_cls": 2.0,
         "val_map": 0.1, "val_map50": 0.2, "lr": 0.01},
        {"epoch": 2, "stage": "full", "train_loss": 2.0, "train_loss_box": 0.8, "train_loss_cls": 1.2,
         "val_map": 0.2, "val_map50": 0.35, "lr": 0.01},
        {"epoch": 3, "stage": "full", "train_loss": 1.5, "train_loss_box": "", "train_loss_cls": 1.0,
         "val_map": "0.25", "val_map50": None, "lr": 0.01},
    ]
    files = [
        plot_pr_curves(curves, tmp_path / "plots" / "pr.png"),
        plot_f1_confidence(curves, tmp_path / "f1.png"),
        plot_pr_curves(pr_curves(many_gt, many_dt, many), tmp_path / "pr_many.png"),
        plot_f1_confidence(pr_curves(ground_truth, [], classes), tmp_path / "f1_empty.png"),
        plot_confusion_matrix(confusion_matrix(ground_truth, detections, classes), classes, tmp_path / "cm.png"),
        plot_learning_curves(history, tmp_path / "lc.png"),
        plot_learning_curves([{"epoch": 1, "train_loss": 1.0}], tmp_path / "lc_one.png"),
    ]
    for f in files:
        assert f.read_bytes()[:8] == PNG and f.stat().st_size > 1000, f
    with pytest.raises(ValueError, match="3 x 3"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a", "b"], tmp_path / "bad.png")
