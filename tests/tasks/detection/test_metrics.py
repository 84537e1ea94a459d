"""COCO metrics and the F1-best confidence threshold on cases small enough to check by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from headstart.errors import ConfigError, DataError
from headstart.tasks.detection.matching import best_f1_threshold, match_detections
from headstart.tasks.detection.metrics import STATS_KEYS, coco_metrics, coco_results

A, B = ["a"], ["a", "b"]


def _gt(image_id, boxes, labels, ignore=None):
    record = {"image_id": image_id, "width": 640, "height": 480, "boxes": np.array(boxes, float).reshape(-1, 4),
              "labels": np.array(labels, int)}
    if ignore is not None:
        record["ignore"] = np.array(ignore, bool)
    return record


def _dt(image_id, boxes, scores, labels):
    return {"image_id": image_id, "boxes": np.array(boxes, float).reshape(-1, 4), "scores": np.array(scores, float),
            "labels": np.array(labels, int)}


def test_perfect_detections_score_1_everywhere():
    small, medium, large = [0, 0, 20, 20], [10, 10, 50, 50], [100, 100, 300, 300]  # 400, 1600, 40000 px²
    gt = [_gt(1, [medium, large], [0, 1]), _gt(2, [small], [0])]
    dt = [_dt(1, [medium, large], [0.9, 0.8], [0, 1]), _dt(2, [small], [0.7], [0])]
    m = coco_metrics(gt, dt, B)
    assert all(m[k] == pytest.approx(1.0) for k in STATS_KEYS), m
    assert m["task"] == "detect" and m["classes"] == B
    assert (m["n_images"], m["n_boxes"], m["n_ignored"], m["n_detections"]) == (2, 3, 0, 3)
    assert m["conf_threshold"] == 0.7 and m["f1_at_threshold"] == 1.0
    assert m["per_class"]["a"] == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0, "n_boxes": 2, "n_detections": 2,
                                   "precision": 1.0, "recall": 1.0}
    json.dumps(m)  # plain types only


def test_a_false_positive_above_the_true_positive_halves_ap():
    gt = [_gt(1, [[10, 10, 50, 50]], [0])]
    dt = [_dt(1, [[200, 200, 240, 240], [10, 10, 50, 50]], [0.9, 0.8], [0, 0])]
    m = coco_metrics(gt, dt, A)
    # precision 0 then 1/2 at recall 1: the interpolated precision is 0.5 at every recall point
    assert m["map"] == pytest.approx(0.5) and m["map50"] == pytest.approx(0.5) and m["map75"] == pytest.approx(0.5)
    assert m["ar1"] == 0.0 and m["ar10"] == 1.0 and m["ar100"] == 1.0  # at 1 detection per image, only the FP
    assert m["map_small"] is None and m["map_large"] is None and m["map_medium"] == pytest.approx(0.5)
    assert m["conf_threshold"] == 0.8 and m["f1_at_threshold"] == pytest.approx(2 / 3)
    assert m["precision_at_threshold"] == 0.5 and m["recall_at_threshold"] == 1.0


def test_a_missed_box_caps_recall():
    gt = [_gt(1, [[10, 10, 50, 50], [100, 100, 140, 140]], [0, 0])]
    dt = [_dt(1, [[10, 10, 50, 50]], [0.6], [0])]
    m = coco_metrics(gt, dt, A)
    assert m["map"] == pytest.approx(51 / 101)  # precision 1 at recall 0, 0.01, ..., 0.5; 0 beyond
    assert m["ar100"] == pytest.approx(0.5)
    assert m["f1_at_threshold"] == pytest.approx(2 / 3) and m["recall_at_threshold"] == 0.5


def test_ignored_boxes_are_neither_misses_nor_false_positives():
    box, ignored = [10, 10, 50, 50], [200, 200, 300, 300]
    gt = [_gt(1, [box, ignored, [400, 300, 450, 350]], [0, 0, 0], ignore=[False, True, True])]
    dt = [_dt(1, [box, ignored, [210, 210, 230, 230]], [0.5, 0.95, 0.9], [0, 0, 0])]  # the last: inside the region
    m = coco_metrics(gt, dt, A)
    assert m["map"] == pytest.approx(1.0) and m["ar100"] == pytest.approx(1.0)
    assert (m["n_boxes"], m["n_ignored"], m["n_detections"]) == (1, 2, 3)
    assert m["conf_threshold"] == 0.5 and m["f1_at_threshold"] == 1.0
    # a detection of another class on an ignored box is a false positive
    m = coco_metrics(gt, [_dt(1, [box, ignored], [0.5, 0.95], [0, 1])], B)
    assert m["per_class"]["a"]["ap"] == pytest.approx(1.0) and m["per_class"]["b"]["ap"] is None
    assert m["conf_threshold"] == 0.5 and m["f1_at_threshold"] == pytest.approx(2 / 3)  # b's FP (.95) counts
    assert m["per_class"]["b"]["n_detections"] == 1 and m["per_class"]["b"]["precision"] == 0.0


def test_no_ground_truth_cases_are_none_not_minus_one():
    gt = [_gt(1, [[10, 10, 50, 50]], [0]), _gt(2, [], [])]
    m = coco_metrics(gt, [], B)
    assert m["map"] == 0.0 and m["ar100"] == 0.0
    assert m["per_class"]["b"]["ap"] is None and m["per_class"]["b"]["n_boxes"] == 0
    assert m["conf_threshold"] is None and m["f1_at_threshold"] == 0.0
    m = coco_metrics([_gt(1, [], [])], [_dt(1, [[0, 0, 5, 5]], [0.5], [0])], A)
    assert all(m[k] is None for k in STATS_KEYS)
    assert m["conf_threshold"] is None and m["f1_at_threshold"] == 0.0
    assert "NaN" not in json.dumps(m) and "-1" not in json.dumps(m)
    m = coco_metrics([_gt(1, [], [])], [], A)
    assert m["f1_at_threshold"] is None and m["n_boxes"] == 0


def test_f1_threshold_by_hand_pools_the_classes():
    """a: 2 boxes, b: 1. Detections by score: a TP .9, b FP .8, a FP .7, b TP .6, a TP .5, b FP .3.
    F1 = 2TP / (kept + 3): .5 (.9), .4 (.8), .33 (.7), .57 (.6), .75 (.5), .67 (.3)."""
    a1, a2, b1, far = [0, 0, 40, 40], [100, 0, 140, 40], [0, 100, 40, 140], [300, 300, 340, 340]
    gt = [_gt(1, [a1, a2], [0, 0]), _gt(2, [b1], [1])]
    dt = [_dt(1, [a1, far, a2], [0.9, 0.7, 0.5], [0, 0, 0]), _dt(2, [far, b1, far], [0.8, 0.6, 0.3], [1, 1, 1])]
    best = best_f1_threshold(match_detections(gt, dt, B))
    assert best == pytest.approx({"conf_threshold": 0.5, "f1_at_threshold": 0.75, "precision_at_threshold": 0.6,
                                  "recall_at_threshold": 1.0})
    m = coco_metrics(gt, dt, B)
    assert m["conf_threshold"] == 0.5 and m["f1_at_threshold"] == pytest.approx(0.75)
    assert m["per_class"]["a"]["precision"] == pytest.approx(2 / 3) and m["per_class"]["b"]["precision"] == 0.5
    assert m["per_class"]["a"]["recall"] == 1.0 and m["per_class"]["b"]["recall"] == 1.0


def test_f1_ties_go_to_the_highest_threshold():
    box1, box2, far = [0, 0, 40, 40], [100, 0, 140, 40], [300, 300, 340, 340]
    gt = [_gt(1, [box1, box2], [0, 0])]  # .9 TP: 2/3; .8, .7 FP; .6 TP: 4/6 = 2/3 again
    dt = [_dt(1, [box1, far, far, box2], [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0])]
    best = best_f1_threshold(match_detections(gt, dt, A))
    assert best["conf_threshold"] == 0.9 and best["f1_at_threshold"] == pytest.approx(2 / 3)


def test_matching_is_greedy_by_score_and_takes_the_best_iou():
    g1, g2 = [0, 0, 10, 10], [5, 0, 15, 10]
    gt = [_gt(1, [g1, g2], [0, 0])]
    # d1 (.9): IoU .43 with g1, .82 with g2 -> g2; d2 (.8) is g2 exactly but g2 is taken, IoU .33 with g1 -> FP
    dt = [_dt(1, [[5, 0, 15, 10], [4, 0, 14, 10]], [0.8, 0.9], [0, 0])]
    matches = match_detections(gt, dt, A)
    assert matches.scores.tolist() == [0.9, 0.8] and matches.tp.tolist() == [True, False]
    assert matches.n_gt.tolist() == [2]


def test_coco_results_are_xywh_with_category_ids_from_1():
    res = coco_results([_dt(5, [[10, 20, 40, 60]], [0.25], [1]), _dt(6, [], [], [])], B)
    assert res == [{"image_id": 5, "category_id": 2, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.25}]
    json.dumps(res)


@pytest.mark.parametrize("gt, dt, message", [
    ([_gt(1, [[0, 0, 1, 1]], [2])], [], r"class indices in \[0, 2\)"),
    ([_gt(1, [[0, 0, 1, 1]], [0])], [_dt(9, [], [], [])], "image_id 9 is not an image of the ground truth"),
    ([_gt(1, [[5, 0, 1, 1]], [0])], [], "x2 < x1"),
    ([_gt(1, [], []), _gt(1, [], [])], [], "appears twice"),
    ([{"image_id": 1, "boxes": np.zeros((1, 3)), "labels": [0], "width": 1, "height": 1}], [], r"shape \(N, 4\)"),
    ([_gt(1, [[0, 0, 1, 1]], [0])], [_dt(1, [[0, 0, 1, 1]], [np.nan], [0])], "NaN"),
    ([], [], "no images"),
])
def test_bad_inputs_say_what_is_wrong(gt, dt, message):
    with pytest.raises(DataError, match=message):
        coco_metrics(gt, dt, B)


def test_only_bbox_is_supported():
    with pytest.raises(ConfigError, match="iou_type"):
        coco_metrics([_gt(1, [], [])], [], A, iou_type="segm")


def test_without_faster_coco_eval_the_error_names_the_extra(monkeypatch):
    import sys

    from headstart._imports import MissingDependencyError

    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'headstart\[train\]'"):
        coco_metrics([_gt(1, [], [])], [], A)
