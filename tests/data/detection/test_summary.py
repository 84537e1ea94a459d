"""Summary numbers checked by hand, box geometry, and the fingerprint."""

from __future__ import annotations

import math

import pytest

from headstart.data.detection import BoxSample, DetectionIndex, load_detection_dataset
from headstart.data.detection.boxes import (
    CLIP_TOLERANCE,
    cxcywh_to_xyxy,
    duplicate_flags,
    fit_box,
    iou_matrix,
    xywh_to_xyxy,
)
from headstart.data.detection.summary import size_bucket
from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco


def _dataset(tmp_path):
    images = [
        FixtureImage("a.png", [FixtureBox("cat", 0, 0, 100, 100), FixtureBox("dog", 10, 10, 20, 14)], size=(200, 100)),
        FixtureImage("b.png", [FixtureBox("cat", 50, 20, 90, 60)], size=(200, 100)),
        FixtureImage("c.png", [], size=(64, 48)),
        FixtureImage("d.png", [FixtureBox("dog", 0, 0, 31, 31), FixtureBox("cat", 0, 0, 10, 10, ignore=True)],
                     split="val", size=(100, 50)),
    ]
    return load_detection_dataset(write_coco(tmp_path / "c", images, ["cat", "dog"]), test_fraction=0)


def test_counts_by_hand(tmp_path):
    index = _dataset(tmp_path)
    assert index.num_classes == 2
    assert index.box_counts("train") == {"cat": 2, "dog": 1}
    assert index.image_counts("train") == {"cat": 2, "dog": 1}
    assert index.box_counts("val") == {"cat": 0, "dog": 1}
    assert index.box_counts("val", include_ignored=True) == {"cat": 1, "dog": 1}
    assert index.image_counts("val") == {"cat": 0, "dog": 1}  # the crowd box does not count
    assert index.box_counts("test") == {"cat": 0, "dog": 0}

    s = index.summary()
    assert s.num_images == {"train": 3, "val": 1}
    assert s.num_boxes == {"train": 3, "val": 1}
    assert s.negatives == {"train": 1, "val": 0}
    assert s.ignored == {"train": 0, "val": 1}
    # areas: 100*100 = 10000 (large), 10*4 = 40 (small), 40*40 = 1600 (medium); val 31*31 = 961 (small)
    assert s.sizes == {"train": {"small": 1, "medium": 1, "large": 1}, "val": {"small": 1, "medium": 0, "large": 0}}
    assert s.sizes_at_input is None and s.tiny_at_input is None

    # At input size 100, the 200x100 images shrink by half: 50x50 (medium), 5x2 (small, tiny), 20x20 (small);
    # the 100x50 val image keeps its size: 31x31 (small).
    s = index.summary(input_size=100)
    assert s.sizes_at_input == {"train": {"small": 2, "medium": 1, "large": 0},
                                "val": {"small": 1, "medium": 0, "large": 0}}
    assert s.tiny_at_input == {"train": 1, "val": 0}
    assert s.to_dict()["tiny_at_input"] == {"train": 1, "val": 0}


def test_format(tmp_path):
    text = _dataset(tmp_path).summary(input_size=100).format()
    lines = text.splitlines()
    assert lines[0].endswith("(coco): 2 classes, 3 train images (3 boxes), 1 val images (1 boxes)")
    cat = next(line for line in lines if line.startswith("cat "))
    assert cat.split() == ["cat", "2", "2", "0", "0"]
    assert next(line for line in lines if line.startswith("images without boxes")).split()[-2:] == ["1", "0"]
    assert next(line for line in lines if line.startswith("ignored boxes")).split()[-1] == "1"
    assert "  train: 1 small, 1 medium, 1 large" in lines
    assert "Box sizes at input size 100 (each image resized so its longer side is 100):" in lines
    assert "  train: 2 small, 1 medium, 0 large; 1 with the shorter side below 8 px" in lines


def test_size_bucket_edges():
    assert size_bucket(32**2 - 0.01) == "small" and size_bucket(32**2) == "medium"
    assert size_bucket(96**2 - 0.01) == "medium" and size_bucket(96**2) == "large"


def test_fingerprint_follows_paths_and_boxes(tmp_path):
    sample = BoxSample(tmp_path / "a.png", 10, 10, ((1.0, 1.0, 5.0, 5.0),), (0,), (False,), 0)
    index = DetectionIndex(tmp_path, "coco", ["a"], {"train": [sample], "val": []})
    same = DetectionIndex(tmp_path, "voc", ["a"], {"train": [sample], "val": []}, notes=["x"])
    assert index.fingerprint() == same.fingerprint()
    moved = BoxSample(tmp_path / "a.png", 10, 10, ((1.0, 1.0, 5.0, 5.5),), (0,), (False,), 0)
    assert DetectionIndex(tmp_path, "coco", ["a"], {"train": [moved], "val": []}).fingerprint() != index.fingerprint()
    resplit = DetectionIndex(tmp_path, "coco", ["a"], {"train": [], "val": [sample]})
    assert resplit.fingerprint() != index.fingerprint()


def test_conversions():
    assert xywh_to_xyxy(10, 20, 5, 6) == (10.0, 20.0, 15.0, 26.0)
    assert cxcywh_to_xyxy(0.5, 0.5, 0.2, 0.4) == pytest.approx((0.4, 0.3, 0.6, 0.7))


@pytest.mark.parametrize(
    "box, verdict, fitted",
    [
        ((1, 2, 3, 4), "ok", (1.0, 2.0, 3.0, 4.0)),
        ((-5, 2, 3, 4), "clipped", (0.0, 2.0, 3.0, 4.0)),
        ((1, 2, 12, 11), "clipped", (1.0, 2.0, 10.0, 10.0)),
        ((1, 2, 10 + CLIP_TOLERANCE / 2, 4), "ok", (1.0, 2.0, 10.0, 4.0)),
        ((10, 2, 12, 4), "outside", None),
        ((-3, 2, 0, 4), "outside", None),
        ((3, 2, 3, 4), "empty", None),
        ((3, 4, 5, 2), "empty", None),
        ((math.nan, 2, 5, 4), "not-finite", None),
    ],
)
def test_fit_box(box, verdict, fitted):
    assert fit_box(box, 10, 10) == (fitted, verdict)


def test_duplicates_only_within_a_class():
    boxes = [(0, 0, 10, 10), (0, 0, 10, 10.1), (0, 0, 10, 10), (0, 0, 10, 12), (20, 20, 30, 30)]
    labels = [0, 0, 1, 0, 0]
    assert iou_matrix(boxes[:2])[0, 1] == pytest.approx(100 / 101)
    # box 1 repeats box 0; box 2 is another class; box 3 overlaps 0 by IoU 100/120 < 0.95
    assert duplicate_flags(boxes, labels) == [None, 0, None, None, None]
    assert duplicate_flags([], []) == []
