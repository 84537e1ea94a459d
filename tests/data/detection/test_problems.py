"""Each annotation problem: repaired or left out and listed by default, a DataError with strict=True.
Every message names the file and the line or annotation id, and says what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from headstart.data.detection import Problem, load_detection_dataset
from headstart.errors import DataError
from tests.data.detection.conftest import (
    FixtureBox,
    FixtureImage,
    edit_json,
    standard_images,
    write_coco,
    write_voc,
    write_yolo,
)

CLASSES = ["cat", "dog", "bird"]


def _coco(tmp_path) -> Path:
    return write_coco(tmp_path / "coco", standard_images(), CLASSES)


def _add_annotation(root: Path, image_id: int = 0, bbox=(1, 1, 5, 5), category_id: int = 1, **extra) -> None:
    def edit(data):
        data["annotations"].append({"id": 500, "image_id": image_id, "category_id": category_id, "bbox": list(bbox),
                                    "iscrowd": 0, **extra})

    edit_json(root / "annotations" / "instances_train.json", edit)


def _only(index, action: str) -> Problem:
    found = [p for p in index.problems if p.action == action]
    assert len(found) == 1, index.problems
    return found[0]


def _sample(index, name: str, split: str = "train"):
    return next(s for s in index.splits[split] if s.path.name == name)


def _strict(root, pattern: str):
    with pytest.raises(DataError, match=pattern):
        load_detection_dataset(root, strict=True, test_fraction=0)


# --- boxes -------------------------------------------------------------------------------------


def test_box_partly_outside_is_clipped(tmp_path):
    root = _coco(tmp_path)
    _add_annotation(root, image_id=0, bbox=(50, 30, 30, 30))  # t1.png is 64x48
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "clipped")
    assert p.path.endswith("instances_train.json") and p.where == "annotation 500" and p.severity == "warning"
    assert "[50, 30, 80, 60]" in p.message and "clipped to [50, 30, 64, 48]" in p.message
    assert _sample(index, "t1.png").boxes[-1] == (50.0, 30.0, 64.0, 48.0)
    _strict(root, r"instances_train\.json, annotation 500: the 'cat' box \[50, 30, 80, 60\] of 'train/t1\.png'"
                  r" \(64x48\) extends beyond the image; clipped to \[50, 30, 64, 48\] \(clipped\)\. Redraw")


def test_box_entirely_outside_is_dropped(tmp_path):
    root = _coco(tmp_path)
    _add_annotation(root, bbox=(70, 10, 5, 5))
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "dropped")
    assert p.where == "annotation 500" and "lies entirely outside the image" in p.message
    assert len(_sample(index, "t1.png").boxes) == 2
    _strict(root, r"annotation 500: .* lies entirely outside the image \(dropped\)")


@pytest.mark.parametrize("bbox", [(10, 10, 0, 5), (10, 10, 5, -2)])
def test_zero_or_negative_size_box_is_dropped(tmp_path, bbox):
    root = _coco(tmp_path)
    _add_annotation(root, bbox=bbox)
    index = load_detection_dataset(root, test_fraction=0)
    assert "zero or negative width or height" in _only(index, "dropped").message
    _strict(root, r"annotation 500: .* has zero or negative width or height \(dropped\)\. Redraw the box")


def test_voc_inverted_box_is_dropped_with_object_number(tmp_path):
    images = standard_images()
    images[1].boxes.append(FixtureBox("cat", 30, 30, 20, 40))  # xmax < xmin
    root = write_voc(tmp_path / "v", images, CLASSES)
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "dropped")
    assert p.path.endswith("t2.xml") and p.where == "object 2"
    _strict(root, r"t2\.xml, object 2: the 'cat' box \[30, 30, 20, 40\] .* zero or negative width")


def test_duplicate_boxes_of_one_class_are_dropped(tmp_path):
    root = _coco(tmp_path)
    _add_annotation(root, image_id=0, bbox=(4, 6, 16, 24.2))  # repeats cat (4, 6, 20, 30): IoU ~0.99
    _add_annotation(root, image_id=0, bbox=(4, 6, 16, 24), category_id=3)  # a bird in the same place: kept
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "dropped")
    assert "repeats the box at annotation" in p.message and p.severity == "warning"
    t1 = _sample(index, "t1.png")
    assert [index.classes[i] for i in t1.labels] == ["cat", "dog", "bird"]
    _strict(root, r"annotation 500: the 'cat' box .* repeats the box at annotation \d+ \(IoU > 0\.95\)")


# --- YOLO lines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 1.5 0.5 0.2 0.2", r"has coordinates outside \[0, 1\] \(1\.5 0\.5 0\.2 0\.2\)"),
        ("0 0.5 0.5 0.2", r"has 4 field\(s\); a box line has 5"),
        ("0 0.5 oops 0.2 0.2", r"has 'oops', which is not a number"),
        ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2", r"has 9 fields: a segmentation polygon, not a box"),
        ("7 0.5 0.5 0.2 0.2", r"has the class id 7, which is not in the names of data\.yaml \(ids 0, 1, 2\)"),
        ("1.5 0.5 0.5 0.2 0.2", r"has the class id '1\.5', which is not a whole number"),
    ],
)
def test_bad_yolo_line_is_dropped(tmp_path, line, message):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    label = root / "labels" / "train" / "t2.txt"
    label.write_text(label.read_text() + line + "\n")
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "dropped")
    assert p.path == str(label) and p.where == "line 2" and re.search(message, p.message)
    assert len(_sample(index, "t2.png").boxes) == 1
    _strict(root, re.escape(f"{label}, line 2: ") + message)


def test_yolo_box_partly_outside_is_clipped(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    label = root / "labels" / "train" / "t4.txt"
    label.write_text("2 0.95 0.5 0.2 0.5\n")  # x from 0.85 to 1.05 of 64 px
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "clipped")
    assert p.where == "line 1"
    assert _sample(index, "t4.png").boxes[0] == pytest.approx((54.4, 12.0, 64.0, 36.0))


def test_orphan_yolo_label_is_reported(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    orphan = root / "labels" / "train" / "gone.txt"
    orphan.write_text("0 0.5 0.5 0.2 0.2\n")
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "skipped")
    assert p.path == str(orphan) and p.severity == "warning"
    _strict(root, r"gone\.txt: the label file has no image in images/train/ \(skipped\)\. Add the image")


# --- classes -----------------------------------------------------------------------------------


def test_unknown_coco_category_is_dropped(tmp_path):
    root = _coco(tmp_path)
    _add_annotation(root, category_id=99)
    index = load_detection_dataset(root, test_fraction=0)
    assert _only(index, "dropped").message == "has category_id 99, which is not in 'categories' (ids 1, 2, 3)"
    _strict(root, r"annotation 500: has category_id 99, which is not in 'categories' \(ids 1, 2, 3\) \(dropped\)\."
                  r" Use one of the listed category ids")


def test_unknown_voc_class_name_is_dropped(tmp_path):
    images = standard_images()
    images[2].boxes.append(FixtureBox("horse", 1, 1, 10, 10))
    root = write_voc(tmp_path / "v", images, CLASSES, class_file="labels.txt")
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "dropped")
    assert p.where == "object 2" and "has the class 'horse', which labels.txt does not list" in p.message
    _strict(root, r"t3\.xml, object 2: has the class 'horse', which labels\.txt does not list \(dropped\)\."
                  r" Fix the name or add it to labels\.txt")


# --- images ------------------------------------------------------------------------------------


def test_annotation_of_an_unlisted_image_is_dropped(tmp_path):
    root = _coco(tmp_path)
    _add_annotation(root, image_id=999)
    index = load_detection_dataset(root, test_fraction=0)
    assert _only(index, "dropped").message == "refers to image id 999, which 'images' does not list"
    _strict(root, r"annotation 500: refers to image id 999, which 'images' does not list \(dropped\)")


def test_missing_image_file_is_dropped_with_its_boxes(tmp_path):
    root = _coco(tmp_path)
    (root / "train" / "t1.png").unlink()
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "dropped")
    assert p.where == "image 0" and p.message == "the image file 'train/t1.png' does not exist; its 2 box(es) were dropped"
    assert "t1.png" not in [s.path.name for s in index.splits["train"]]
    _strict(root, r"instances_train\.json, image 0: the image file 'train/t1\.png' does not exist")


def test_missing_image_in_voc_and_yolo_lists(tmp_path):
    voc = write_voc(tmp_path / "v", standard_images(), CLASSES)
    (voc / "JPEGImages" / "t2.png").unlink()
    p = _only(load_detection_dataset(voc, test_fraction=0), "dropped")
    assert p.path.endswith("t2.xml") and "'JPEGImages/t2.png' does not exist" in p.message

    yolo = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    (yolo / "train.txt").write_text("images/train/t1.png\nimages/train/nope.png\n")
    doc = yaml.safe_load((yolo / "data.yaml").read_text())
    (yolo / "data.yaml").write_text(yaml.safe_dump({**doc, "train": "train.txt"}))
    p = _only(load_detection_dataset(yolo, test_fraction=0), "dropped")
    assert p.path == str(yolo / "train.txt") and p.where == "line 2"
    _strict(yolo, r"train\.txt, line 2: the image file 'images/train/nope\.png' does not exist")


def test_truncated_image_is_skipped(tmp_path):
    root = _coco(tmp_path)
    path = root / "train" / "t2.png"
    path.write_bytes(path.read_bytes()[:60])
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "skipped")
    assert p.path == str(path) and p.where is None and p.message.startswith("cannot be read")
    _strict(root, re.escape(str(path)) + r": cannot be read: .* \(skipped\)\. Re-export or delete the file")


def test_declared_size_differs_from_the_image(tmp_path):
    root = _coco(tmp_path)

    def grow(data):
        data["images"][0].update(width=100, height=100)

    edit_json(root / "annotations" / "instances_train.json", grow)
    _add_annotation(root, image_id=0, bbox=(70, 10, 20, 20))  # inside 100x100, outside the real 64x48
    index = load_detection_dataset(root, test_fraction=0)
    kept = _only(index, "kept")
    assert kept.where == "image 0" and kept.severity == "warning"
    assert kept.message == "states the size 100x100 for 'train/t1.png', but the image is 64x48"
    assert "lies entirely outside" in _only(index, "dropped").message  # judged against the real size
    _strict(root, r"image 0: states the size 100x100 for 'train/t1\.png', but the image is 64x48 \(kept\)\. Correct")


def test_swapped_declared_size_points_at_exif(tmp_path):
    root = write_voc(tmp_path / "v", standard_images(), CLASSES)
    xml = root / "Annotations" / "t3.xml"
    xml.write_text(xml.read_text().replace("<width>64</width>", "<width>48</width>")
                   .replace("<height>48</height>", "<height>64</height>"))
    p = _only(load_detection_dataset(root, test_fraction=0), "kept")
    assert "EXIF orientation" in p.fix and p.path.endswith("t3.xml") and p.severity == "error"


def test_image_in_two_splits_is_left_out_of_the_later(tmp_path):
    images = standard_images()
    root = write_voc(tmp_path / "v", images, CLASSES)
    (root / "ImageSets" / "Main" / "val.txt").write_text("v1\nv2\nt3\n")
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "skipped")
    assert p.path.endswith("val.txt") and p.where == "line 3" and "also in the train split" in p.message
    assert [s.path.name for s in index.splits["val"]] == ["v1.png", "v2.png"]


# --- strict lists them all -------------------------------------------------------------------------


def test_strict_lists_the_first_twenty_and_a_count(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    label = root / "labels" / "train" / "t4.txt"
    label.write_text("".join("9 0.5 0.5 0.1 0.1\n" for _ in range(25)))
    index = load_detection_dataset(root, test_fraction=0)
    assert len(index.problems) == 25 and all(p.action == "dropped" for p in index.problems)
    with pytest.raises(DataError, match=r"25 problem\(s\) in the dataset .*\(strict is on\)") as info:
        load_detection_dataset(root, strict=True, test_fraction=0)
    text = str(info.value)
    assert "line 20:" in text and "line 21:" not in text and "... and 5 more" in text
    assert "turn strict off" in text


def test_summary_lists_the_problems(tmp_path):
    root = _coco(tmp_path)
    _add_annotation(root, bbox=(70, 10, 5, 5))
    text = load_detection_dataset(root, test_fraction=0).summary().format()
    assert "1 problem(s) in the annotations (1 dropped):" in text
    assert "annotation 500: the 'cat' box [70, 10, 75, 15]" in text


def test_problem_formats_on_one_line():
    p = Problem("a/b.txt", "line 3", "has 4 field(s)", "Write 5 numbers.")
    assert p.format() == "a/b.txt, line 3: has 4 field(s) (dropped). Write 5 numbers."
    assert Problem.from_dict(p.to_dict()) == p
    assert str(Problem("x.png", None, "cannot be read", "Delete it.", "error", "skipped")) == (
        "x.png: cannot be read (skipped). Delete it.")


def test_a_dataset_without_usable_boxes_is_fatal(tmp_path):
    images = [FixtureImage("a.png", [FixtureBox("cat", 70, 70, 80, 80)]), FixtureImage("b.png", split="val")]
    root = write_coco(tmp_path / "c", images, CLASSES)
    with pytest.raises(DataError, match=r"has 2 images but not one usable box"):
        load_detection_dataset(root, test_fraction=0)


def test_image_listed_twice_in_one_split_has_its_boxes_pooled(tmp_path):
    root = _coco(tmp_path)

    def repeat(data):
        data["images"].append({"id": 50, "file_name": "t2.png", "width": 64, "height": 48})
        data["annotations"].append({"id": 600, "image_id": 50, "category_id": 1, "bbox": [40, 20, 10, 10]})

    edit_json(root / "annotations" / "instances_train.json", repeat)
    index = load_detection_dataset(root, test_fraction=0)
    p = _only(index, "kept")
    assert p.where == "image 50" and p.message == "the image 'train/t2.png' is listed again (first at image 1)"
    assert [index.classes[i] for i in _sample(index, "t2.png").labels] == ["dog", "cat"]
    _strict(root, r"image 50: the image 'train/t2\.png' is listed again \(first at image 1\) \(kept\)\. List each")
