"""Each detection doctor check on planted data: tiny arrays, boxes and histories, no model."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.diagnose import detection_data as dd
from headstart.diagnose import detection_labels as dl
from headstart.diagnose import detection_run as dr
from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco


def _checks(findings):
    return {f.check: f for f in findings}


# ---- annotation problems found by the loader ---------------------------------------------------


def test_annotation_problems_from_the_real_loader_are_grouped_with_files_and_boxes(tmp_path):
    from headstart.data.detection import load_detection_dataset

    images = [
        FixtureImage(
            f"im{i}.png",
            [FixtureBox("a", 2, 2, 20, 20), FixtureBox("b", 30, 10, 50, 40)],
            split="train" if i < 6 else "val",
        )
        for i in range(8)
    ]
    images[0].boxes.append(FixtureBox("a", 50, 30, 90, 60))  # past the right edge: clipped
    images[1].boxes.append(FixtureBox("a", 100, 100, 120, 120))  # entirely outside: dropped
    images[2].boxes.append(FixtureBox("b", 30.5, 10, 50, 40.5))  # a duplicate of the 'b' box
    root = write_coco(tmp_path / "d", images, ["a", "b"])
    edit = root / "annotations" / "instances_train.json"
    import json

    d = json.loads(edit.read_text())
    d["annotations"][0]["bbox"] = [5, 5, 0, 8]  # zero width: degenerate
    edit.write_text(json.dumps(d))
    index = load_detection_dataset(root)
    found = _checks(dd.check_annotation_problems(index.problems, 16, root=index.root))
    assert set(found) == {"annotations-outside", "annotations-degenerate", "annotations-duplicate-box"}
    outside = found["annotations-outside"]
    assert outside.data["count"] == 2 and "1 clipped" in outside.evidence and "1 dropped" in outside.evidence
    assert "e.g. annotations/instances_train.json, annotation" in outside.evidence and "im0.png" in outside.evidence
    assert outside.severity == "high"  # 2 of 18 boxes
    assert "x2 < x1" in found["annotations-degenerate"].fix
    assert found["annotations-duplicate-box"].data["count"] == 1
    assert dd.check_annotation_problems([], 10) == []
    assert dd.problem_kind("something new") == "other"


def test_annotation_problem_severity_follows_the_share_of_boxes():
    from headstart.data.detection.problems import Problem

    one = [Problem("a.json", "annotation 1", "the 'a' box [1] of 'x.png' (9x9) lies entirely outside the image", "f")]
    assert dd.check_annotation_problems(one, 10_000)[0].severity == "low"
    assert dd.check_annotation_problems(one, 100)[0].severity == "medium"
    assert dd.check_annotation_problems(one, 10)[0].severity == "high"


# ---- coordinate formats -------------------------------------------------------------------------


def _scene(n=40, seed=0, size=200):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, size * 0.6, (n, 2))
    wh = rng.uniform(10, size * 0.35, (n, 2))
    return np.concatenate([xy, xy + wh], 1), np.full((n, 2), size, dtype=float)


def test_coordinate_format_clean_boxes_give_nothing():
    xyxy, sizes = _scene()
    assert dd.check_coordinate_format(xyxy, sizes, np.zeros(len(xyxy), bool), [f"l{i}" for i in range(40)]) == []


def test_coordinate_format_xywh_read_as_xyxy():
    xyxy, sizes = _scene()
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)  # what the file holds, read as corners
    found = _checks(dd.check_coordinate_format(xywh, sizes, np.zeros(40, bool), [f"line {i}" for i in range(40)]))
    f = found["coordinate-format-xywh-as-xyxy"]
    assert f.severity == "high" and "x2 < x1" in f.evidence and "x2 = x + w" in f.fix and "line " in f.evidence


def test_coordinate_format_xyxy_read_as_xywh():
    xyxy, sizes = _scene()
    as_read = np.concatenate([xyxy[:, :2], xyxy[:, :2] + xyxy[:, 2:]], 1)  # COCO reader: x2 = x + 'w'
    f = _checks(dd.check_coordinate_format(as_read, sizes, np.zeros(40, bool), ["a"] * 40))[
        "coordinate-format-xyxy-as-xywh"
    ]
    assert f.severity == "high" and "right or bottom edge" in f.evidence and "w = x2 - x1" in f.fix


def test_coordinate_format_fractions_read_as_pixels():
    xyxy, sizes = _scene()
    found = dd.check_coordinate_format(xyxy / 200, sizes, np.zeros(40, bool), ["a"] * 40)
    assert [f.check for f in found] == ["coordinate-format-fractions-as-pixels"] and found[0].severity == "high"
    assert dd.check_coordinate_format(xyxy / 200, sizes, np.ones(40, bool), ["a"] * 40) == []  # real YOLO


# ---- boxes per class ---------------------------------------------------------------------------


def test_box_balance():
    assert dd.check_box_balance({"a": 100, "b": 90, "c": 60}) == []
    found = _checks(dd.check_box_balance({"a": 400, "b": 20}))
    assert found["box-class-imbalance"].severity == "high" and "20.0x" in found["box-class-imbalance"].evidence
    assert dd.check_box_balance({"a": 80, "b": 20})[0].severity == "medium"
    few = _checks(dd.check_box_balance({"a": 50, "b": 2, "c": 7}))["classes-with-few-boxes"]
    assert few.severity == "high" and "'b': 2" in few.evidence and few.data["classes"] == {"b": 2, "c": 7}


# ---- small objects ------------------------------------------------------------------------------


def test_anchor_best_iou_with_torchvision_anchors():
    iou = dd.anchor_best_iou(np.array([[32.0, 32.0], [64.0, 32.0], [4.0, 4.0]]), ((32.0,), (64.0,)), (0.5, 1.0, 2.0))
    assert iou[0] == pytest.approx(1.0)
    # 64x32 (area 45.25², ratio 0.5) sits between the 22.6x45.3 and 45.3x90.5 anchors: IoU 0.5 with each
    assert iou[1] == pytest.approx(0.5, rel=0.03)
    assert iou[2] == pytest.approx(16 / 1024, rel=0.05)  # torchvision rounds anchor corners to whole pixels
    # the same matching as the anchors fit chose by (tasks/detection/anchors.py)
    from headstart.tasks.detection.anchors import anchor_coverage

    wh = np.random.default_rng(0).uniform(4, 120, (200, 2))
    sizes, ratios = ((16.0, 20.0), (32.0, 40.0), (64.0, 80.0)), (0.5, 1.0, 2.0)
    # (torchvision's rounded corners move a box or two across IoU 0.5)
    assert np.mean(dd.anchor_best_iou(wh, sizes, ratios) >= 0.5) == pytest.approx(
        anchor_coverage(wh, sizes, ratios), abs=0.02
    )


def test_small_objects_below_stride_and_without_anchor():
    rng = np.random.default_rng(0)
    big = rng.uniform(30, 80, (50, 2))
    assert dd.check_small_objects(big, ["b"] * 50, input_size=256, strides=(8, 16, 32), detector="fcos") == []
    tiny = np.concatenate([big[:20], rng.uniform(2, 6, (30, 2))])
    where = [f"im{i}.jpg box 1" for i in range(50)]
    found = _checks(dd.check_small_objects(tiny, where, input_size=256, strides=(8, 16, 32), detector="fcos"))
    f = found["objects-below-finest-stride"]
    assert f.severity == "high" and f.data["count"] == 30 and "--image-size 512" in f.fix and "im20.jpg" in f.evidence
    iou = dd.anchor_best_iou(tiny, ((32.0,), (64.0,), (128.0,)), (1.0,))
    found = _checks(
        dd.check_small_objects(tiny, where, input_size=256, strides=(8, 16, 32), detector="fasterrcnn", best_iou=iou)
    )
    assert found["boxes-without-anchor"].data["count"] >= 30 and found["boxes-without-anchor"].severity == "high"


# ---- label checks from a detector's boxes --------------------------------------------------------


def _image(boxes, labels, dets, dlabels, scores, path="a.jpg"):
    return dl.ImageBoxes(
        path,
        "val",
        np.asarray(boxes, float).reshape(-1, 4),
        np.asarray(labels, int),
        np.asarray(dets, float).reshape(-1, 4),
        np.asarray(dlabels, int),
        np.asarray(scores, float),
    )


def test_find_suspects_missing_wrong_and_misplaced():
    boxes = [[10, 10, 50, 50], [100, 100, 140, 140], [200, 10, 240, 50], [10, 200, 50, 240]]
    labels = [0, 1, 0, 1]
    dets = [
        [11, 10, 50, 51],  # box 0, right class: fine
        [100, 101, 141, 140],  # box 1 found as class 0: wrong label
        [224, 12, 264, 52],  # box 2's class 60% of a width off: misplaced
        [150, 150, 190, 190],  # nothing annotated here: missing
        [300, 300, 320, 320],  # not confident: ignored
        [10, 200, 50, 240],
    ]  # box 3, right class
    im = _image(boxes, labels, dets, [0, 0, 0, 1, 1, 1], [0.9, 0.8, 0.85, 0.95, 0.3, 0.7], "x.jpg")
    suspects = dl.find_suspects([im])
    assert [s.kind for s in suspects] == ["missing", "misplaced", "wrong-label"]  # most confident first
    classes = ["cat", "dog"]
    missing = dl.check_missing_annotations(suspects, 4, 1, classes)
    assert missing[0].check == "likely-missing-annotations" and "'dog' at [150, 150, 190, 190]" in missing[0].evidence
    assert missing[0].severity == "low"  # one box: a look, not an alarm
    wrong = dl.check_wrong_labels(suspects, 4, 1, classes)[0]
    assert "labelled 'dog', detected as 'cat'" in wrong.evidence and wrong.data["boxes"][0]["box"] == [
        100,
        100,
        140,
        140,
    ]
    misplaced = dl.check_misplaced_boxes(suspects, 4, 1, classes)[0]
    assert "x.jpg (val): 'cat' box [200, 10, 240, 50]" in misplaced.evidence


def test_wrong_label_needs_the_model_to_doubt_the_annotated_class():
    box = [[10, 10, 50, 50]]
    torn = _image(box, [1], [[10, 10, 50, 50], [11, 10, 50, 50]], [0, 1], [0.8, 0.6])  # 0.6 >= 0.7 * 0.8
    assert dl.find_suspects([torn]) == []
    sure = _image(box, [1], [[10, 10, 50, 50], [11, 10, 50, 50]], [0, 1], [0.8, 0.3])
    assert [s.kind for s in dl.find_suspects([sure])] == ["wrong-label"]


def test_find_suspects_clean_image_and_severity():
    boxes = [[10, 10, 50, 50], [100, 100, 140, 140]]
    im = _image(boxes, [0, 1], boxes, [0, 1], [0.9, 0.9])
    assert dl.find_suspects([im]) == []
    empty = _image([], [], [[10, 10, 40, 40]], [0], [0.99])
    assert [s.kind for s in dl.find_suspects([empty])] == ["missing"]
    assert dl.find_suspects([empty], confident=0.999) == []
    crowd = dl.ImageBoxes(
        "c.jpg",
        "val",
        np.zeros((0, 4)),
        np.zeros(0, int),
        np.array([[10.0, 10, 40, 40]]),
        np.array([0]),
        np.array([0.99]),
        ignored=np.array([[11.0, 10, 40, 41]]),
    )
    assert dl.find_suspects([crowd]) == []  # a detection on an ignored (crowd / difficult) box is not a missing one
    many = [_image([[0, 0, 5, 5]], [0], [[10, 10, 40, 40]], [0], [0.99], f"{i}.jpg") for i in range(5)]
    found = dl.check_missing_annotations(dl.find_suspects(many), 5, 5, ["a"])
    assert found[0].severity == "medium" and found[0].data["count"] == 5


# ---- run checks ---------------------------------------------------------------------------------


def _history(loss, vmap):
    return [{"epoch": i + 1, "train_loss": a, "val_map": b} for i, (a, b) in enumerate(zip(loss, vmap))]


def test_detection_curves():
    good = _history([2.0, 1.5, 1.2, 1.1, 1.05, 1.0], [0.2, 0.35, 0.42, 0.45, 0.46, 0.46])
    assert dr.check_detection_curves(good) == []
    over = _history([2.0, 1.4, 1.0, 0.7, 0.5, 0.4, 0.3, 0.2], [0.3, 0.45, 0.5, 0.45, 0.4, 0.35, 0.3, 0.3])
    f = dr.check_detection_curves(over)[0]
    assert f.check == "detection-overfitting" and f.severity == "high" and "epoch 3 of 8" in f.evidence
    rising = _history([2.0, 1.8, 1.6, 1.4, 1.3, 1.2], [0.05, 0.1, 0.15, 0.2, 0.26, 0.33])
    f = dr.check_detection_curves(rising)[0]
    assert f.check == "detection-underfitting" and f.severity == "medium" and "--epochs 10" in f.fix
    stuck = _history([2.0, 1.98, 1.97, 1.96], [0.0, 0.01, 0.0, 0.01])
    assert dr.check_detection_curves(stuck)[0].severity == "high"
    assert dr.check_detection_curves(good[:2]) == []


def test_conf_threshold():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    tp = np.array([1, 1, 1, 1, 0, 0], bool)
    assert dr.f1_at(scores, tp, 4, 0.5) == pytest.approx(1.0)
    assert dr.f1_at(scores, tp, 4, 0.85) == pytest.approx(2 / 5)
    f = dr.check_conf_threshold(0.85, 0.5, 0.4, 1.0)[0]
    assert f.check == "poor-confidence-threshold" and f.severity == "high" and "too high" in f.evidence
    assert "--conf 0.50" in f.fix
    assert dr.check_conf_threshold(0.45, 0.5, 0.98, 1.0) == []
    assert dr.check_conf_threshold(None, 0.5, 0.0, 1.0) == []


def test_weak_classes():
    per = {
        "a": {"ap": 0.6, "n_boxes": 30, "recall": 0.8},
        "b": {"ap": 0.55, "n_boxes": 20},
        "c": {"ap": 0.1, "n_boxes": 10, "recall": 0.2},
        "d": {"ap": None, "n_boxes": 0},
    }
    f = dr.check_weak_classes(per, {"a": 300, "b": 200, "c": 12})[0]
    assert f.check == "weak-classes" and "'c': AP 0.100" in f.evidence and "12 training boxes" in f.evidence
    assert f.severity == "high" and list(f.data["classes"]) == ["c"]  # costs (0.575 - 0.1) / 3 = 0.16 mAP
    assert dr.check_weak_classes({"a": {"ap": 0.5, "n_boxes": 3}, "b": {"ap": 0.45, "n_boxes": 3}}) == []
