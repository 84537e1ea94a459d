"""headstart's COCO metrics (faster-coco-eval) against pycocotools, the reference implementation,
on random ground truth and noisy detections; and headstart's own IoU-0.5 matching (used for the F1
threshold, the curves and the confusion matrix) against COCOeval's AP50 per class."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest

from headstart.tasks.detection.matching import pr_curves
from headstart.tasks.detection.metrics import STATS_KEYS, coco_ground_truth, coco_metrics, coco_results
from headstart.tasks.detection.records import as_ground_truth
from tests.tasks.detection.synthetic import detection_set

CLASSES = ["cat", "dog", "bird"]


def _pycocotools(ground_truth, detections, classes):
    pytest.importorskip("pycocotools", reason="pycocotools (the reference COCOeval) is not installed")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = copy.deepcopy(coco_ground_truth(as_ground_truth(ground_truth, len(classes)), classes))
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        results = copy.deepcopy(coco_results(detections, classes))
        dt = gt.loadRes(results) if results else _empty_results(gt)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _empty_results(gt):
    from pycocotools.coco import COCO

    dt = COCO()
    dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
    dt.createIndex()
    return dt


def _stats(metrics):
    return np.array([-1.0 if metrics[k] is None else metrics[k] for k in STATS_KEYS])


def _check(ground_truth, detections, classes=CLASSES):
    ours = coco_metrics(ground_truth, detections, classes)
    ref = _pycocotools(ground_truth, detections, classes)
    np.testing.assert_allclose(_stats(ours), ref.stats[:12], rtol=0, atol=1e-6)
    precision = ref.eval["precision"]  # [T, R, K, A, M]
    curves = pr_curves(ground_truth, detections, classes)
    for k, name in enumerate(classes):
        for key, p in (("ap", precision[:, :, k, 0, -1]), ("ap50", precision[0, :, k, 0, -1])):
            expected = p[p > -1].mean() if (p > -1).any() else None
            got = ours["per_class"][name][key]
            assert (got is None) == (expected is None), (name, key, got, expected)
            if expected is not None:
                assert got == pytest.approx(expected, abs=1e-6), (name, key)
        # headstart's own matching gives COCOeval's AP50 per class
        ap50 = ours["per_class"][name]["ap50"]
        assert np.isnan(curves["ap"][k]) if ap50 is None else curves["ap"][k] == pytest.approx(ap50, abs=1e-9)
    return ours


@pytest.mark.parametrize("seed", range(5))
def test_the_12_coco_stats_equal_pycocotools(seed):
    ground_truth, detections = detection_set(seed, n_images=30, n_classes=3)
    metrics = _check(ground_truth, detections)
    assert 0.2 < metrics["map"] < 0.95 and metrics["n_ignored"] > 0  # a non-trivial case


@pytest.mark.parametrize("seed", [10, 11])
def test_parity_with_tied_scores_and_more_than_100_detections_per_class(seed):
    ground_truth, detections = detection_set(seed, n_images=20, n_classes=3, score_decimals=1)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 400, size=(150, 2))  # 150 detections of one class in one image: the 100 cap applies
    detections.append({"image_id": ground_truth[0]["image_id"], "boxes": np.concatenate([xy, xy + 50], 1),
                       "scores": rng.uniform(0, 1, 150), "labels": np.zeros(150, int)})
    _check(ground_truth, detections)


def test_parity_without_detections_and_with_a_class_without_boxes():
    ground_truth, detections = detection_set(3, n_images=10, n_classes=2)
    _check(ground_truth, [], ["cat", "dog", "bird"])  # bird has no boxes (COCO's -1: None)
    metrics = _check(ground_truth, detections, ["cat", "dog", "bird"])
    assert metrics["per_class"]["bird"]["ap"] is None
