"""Every layout reader gives the same checked boxes for the same dataset, and never writes to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from headstart.data.detection import BoxSample, detect_layout, load_detection_dataset
from tests.data.detection.conftest import (
    FixtureBox,
    FixtureImage,
    draw_image,
    standard_images,
    tree_digest,
    write_coco,
    write_voc,
    write_yolo,
)

CLASSES = ["cat", "dog", "bird"]


def _write(kind: str, root: Path, images, classes=CLASSES) -> Path:
    if kind == "coco":
        return write_coco(root, images, classes)
    if kind == "coco-images":
        return write_coco(root, images, classes, image_folder="images")
    if kind == "coco-export":
        return write_coco(root, images, classes, layout="coco-export")
    if kind == "yolo":
        return write_yolo(root, images, classes)
    if kind == "voc":
        return write_voc(root, images, classes)
    raise ValueError(kind)


def _expected(images, classes=CLASSES):
    """{split: {file name: (w, h, boxes, class names, ignore)}} straight from the fixture."""
    out: dict[str, dict] = {}
    for im in images:
        out.setdefault(im.split, {})[im.name] = (
            im.size[0], im.size[1], [b.xyxy for b in im.boxes], [b.cls for b in im.boxes],
            [b.ignore for b in im.boxes],
        )
    return out


def _as_table(index):
    return {
        split: {
            s.path.name: (s.width, s.height, list(s.boxes), [index.classes[i] for i in s.labels], list(s.ignore))
            for s in samples
        }
        for split, samples in index.splits.items()
    }


def _assert_same(got, want):
    assert got.keys() == want.keys()
    for split in want:
        assert got[split].keys() == want[split].keys(), split
        for name, (w, h, boxes, labels, ignore) in want[split].items():
            gw, gh, gboxes, glabels, gignore = got[split][name]
            assert (gw, gh, glabels, gignore) == (w, h, labels, ignore), name
            assert len(gboxes) == len(boxes)
            for gb, b in zip(gboxes, boxes):
                assert all(isinstance(v, float) for v in gb)
                assert gb == pytest.approx(b, abs=1e-6), name


@pytest.mark.parametrize("kind", ["coco", "coco-images", "coco-export", "yolo", "voc"])
def test_every_layout_reads_the_same_boxes(tmp_path, kind):
    images = standard_images()
    root = _write(kind, tmp_path / kind, images)
    index = load_detection_dataset(root, test_fraction=0)
    assert index.layout == kind.replace("-images", "")
    assert detect_layout(root) == index.layout
    # COCO orders classes by category id; VOC sorts the names of its XML files (no labels.txt here).
    assert index.classes == (sorted(CLASSES) if kind == "voc" else CLASSES)
    assert index.problems == []
    assert index.seed is None  # every split came with the dataset
    _assert_same(_as_table(index), _expected(images))
    assert all(isinstance(s, BoxSample) for v in index.splits.values() for s in v)


def test_readers_agree_with_each_other(tmp_path):
    images = standard_images()
    tables = [_as_table(load_detection_dataset(_write(k, tmp_path / k, images), test_fraction=0))
              for k in ("coco", "coco-export", "yolo", "voc")]
    for other in tables[1:]:
        _assert_same(other, tables[0])


@pytest.mark.parametrize("kind", ["coco", "coco-export", "yolo", "voc"])
def test_loading_never_writes_to_the_dataset(tmp_path, kind):
    root = _write(kind, tmp_path / kind, standard_images())
    before = tree_digest(root)
    index = load_detection_dataset(root, strict=False)
    index.summary(input_size=320).format()
    assert tree_digest(root) == before


def test_image_ids_are_unique_and_follow_the_paths(tmp_path):
    # COCO export files number their images from 0 in every split: the ids must not collide.
    root = write_coco(tmp_path / "d", standard_images(), CLASSES, layout="coco-export")
    index = load_detection_dataset(root, test_fraction=0)
    samples = sorted((s for v in index.splits.values() for s in v), key=lambda s: s.image_id)
    assert [s.image_id for s in samples] == list(range(6))
    rel = [s.path.relative_to(root).as_posix() for s in samples]
    assert rel == sorted(rel)
    again = load_detection_dataset(root, test_fraction=0)
    assert [s.image_id for v in again.splits.values() for s in v] == [s.image_id for v in index.splits.values() for s in v]


def test_coco_crowd_and_voc_difficult_become_ignore(tmp_path):
    images = standard_images()
    images[0].boxes[1].ignore = True  # the dog of t1
    for kind in ("coco", "voc"):
        index = load_detection_dataset(_write(kind, tmp_path / kind, images), test_fraction=0)
        t1 = next(s for s in index.splits["train"] if s.path.name == "t1.png")
        assert t1.ignore == (False, True)
        assert index.box_counts("train") == {"cat": 1, "dog": 1, "bird": 1}
        assert index.box_counts("train", include_ignored=True) == {"cat": 1, "dog": 2, "bird": 1}


def test_background_images_are_kept(tmp_path):
    for kind in ("coco", "yolo", "voc"):
        index = load_detection_dataset(_write(kind, tmp_path / kind, standard_images()), test_fraction=0)
        t4 = next(s for s in index.splits["train"] if s.path.name == "t4.png")
        assert t4.boxes == () and t4.is_negative


def test_yolo_empty_label_file_is_a_background_image(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES, empty_label_files=True)
    assert (root / "labels" / "train" / "t4.txt").read_text() == ""
    index = load_detection_dataset(root, test_fraction=0)
    assert next(s for s in index.splits["train"] if s.path.name == "t4.png").boxes == ()
    assert index.problems == []


def test_coco_categories_follow_their_ids_and_empty_ones_stay(tmp_path):
    root = write_coco(tmp_path / "c", standard_images(), CLASSES)

    def renumber(data):
        mapping = {1: 7, 2: 3, 3: 5}  # cat=7, dog=3, bird=5 -> order dog, bird, cat
        for c in data["categories"]:
            c["id"] = mapping[c["id"]]
        data["categories"].append({"id": 1, "name": "unused"})
        for a in data["annotations"]:
            a["category_id"] = mapping[a["category_id"]]

    from tests.data.detection.conftest import edit_json

    for split in ("train", "val"):
        edit_json(root / "annotations" / f"instances_{split}.json", renumber)
    index = load_detection_dataset(root, test_fraction=0)
    assert index.classes == ["unused", "dog", "bird", "cat"]
    assert index.box_counts("train") == {"unused": 0, "dog": 2, "bird": 1, "cat": 1}
    assert any("'unused' (id 1) has no boxes" in n for n in index.notes)


def test_coco_2017_names_and_single_json(tmp_path):
    root = tmp_path / "coco17"
    write_coco(root, standard_images(), CLASSES)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}.json").rename(root / "annotations" / f"instances_{split}2017.json")
        (root / split).rename(root / f"{split}2017")
    index = load_detection_dataset(root, test_fraction=0)
    assert index.layout == "coco" and len(index.splits["train"]) == 4 and len(index.splits["val"]) == 2

    single = write_coco(tmp_path / "single", standard_images(), CLASSES, layout="single")
    assert detect_layout(single) == "coco"
    index = load_detection_dataset(single, val_fraction=0.3, test_fraction=0)
    assert index.seed == 0 and sum(len(v) for v in index.splits.values()) == 6
    # The JSON file itself is a valid path too.
    assert detect_layout(single / "annotations.json") == "coco"
    assert load_detection_dataset(single / "annotations.json", val_fraction=0.3, test_fraction=0).root == single


def test_yolo_names_dict_list_files_and_path_key(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES, names_as_dict=True, yaml_name="dataset.yaml")
    (root / "train.txt").write_text("./images/train/t1.png\nimages/train/t2.png\n")
    doc = yaml.safe_load((root / "dataset.yaml").read_text())
    doc.update(path=".", train="train.txt")
    (root / "dataset.yaml").write_text(yaml.safe_dump(doc))
    index = load_detection_dataset(root, test_fraction=0)
    assert index.classes == CLASSES
    assert sorted(s.path.name for s in index.splits["train"]) == ["t1.png", "t2.png"]


def test_yolo_roboflow_paths_and_moved_path_key(tmp_path):
    # Roboflow writes train: ../train/images beside data.yaml; 'path' from another machine.
    root = tmp_path / "rf"
    images = standard_images()
    write_yolo(root, images, CLASSES)
    for split in ("train", "val"):
        (root / split).mkdir()
        (root / "images" / split).rename(root / split / "images")
        (root / "labels" / split).rename(root / split / "labels")
    (root / "data.yaml").write_text(yaml.safe_dump({
        "path": "/content/datasets/gone", "train": "../train/images", "val": "../val/images",
        "nc": 3, "names": CLASSES}))
    index = load_detection_dataset(root / "data.yaml", test_fraction=0)
    _assert_same(_as_table(index), _expected(images))
    assert any("'path' of data.yaml" in n for n in index.notes)


def test_yolo_reads_the_size_of_exif_rotated_images_upright(tmp_path):
    # Stored 48x64 with EXIF orientation 6 (rotate 90): the upright image is 64x48.
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    path = root / "images" / "train" / "t1.png"
    stored = Image.open(path).transpose(Image.Transpose.ROTATE_90)
    path.unlink()
    exif = Image.Exif()
    exif[0x0112] = 6
    jpg = path.with_suffix(".jpg")
    stored.save(jpg, exif=exif.tobytes(), quality=95)
    assert Image.open(jpg).size == (48, 64)
    index = load_detection_dataset(root, test_fraction=0)
    t1 = next(s for s in index.splits["train"] if s.path == jpg)
    assert (t1.width, t1.height) == (64, 48)
    assert t1.boxes[1] == pytest.approx((30.0, 10.0, 60.0, 40.0))


def test_voc_class_file_trainval_and_no_image_sets(tmp_path):
    images = standard_images()
    root = write_voc(tmp_path / "v", images, ["bird", "cat", "dog", "fish"], class_file="labels.txt")
    index = load_detection_dataset(root, test_fraction=0)
    assert index.classes == ["bird", "cat", "dog", "fish"]  # the file's order, unused class kept

    plain = write_voc(tmp_path / "plain", images, CLASSES, image_sets=False)
    index = load_detection_dataset(plain, val_fraction=0.3, test_fraction=0)
    assert index.classes == ["bird", "cat", "dog"]  # sorted names from the XML files
    assert index.seed == 0 and sum(len(v) for v in index.splits.values()) == 6

    trainval = write_voc(tmp_path / "tv", images, CLASSES, image_sets=False)
    main = trainval / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "trainval.txt").write_text("\n".join(Path(im.name).stem for im in images) + "\n")
    index = load_detection_dataset(trainval, val_fraction=0.3, test_fraction=0)
    assert sum(len(v) for v in index.splits.values()) == 6 and index.splits["val"]
    assert any("trainval.txt" in n for n in index.notes)


def test_voc_finds_the_image_when_filename_is_wrong(tmp_path):
    root = write_voc(tmp_path / "v", standard_images(), CLASSES)
    xml = root / "Annotations" / "t1.xml"
    xml.write_text(xml.read_text().replace("<filename>t1.png</filename>", "<filename>t1.jpg</filename>"))
    index = load_detection_dataset(root, test_fraction=0)
    assert any(s.path.name == "t1.png" for s in index.splits["train"])
    assert index.problems == []


def test_coco_unlisted_images_are_noted(tmp_path):
    root = write_coco(tmp_path / "c", standard_images(), CLASSES)
    draw_image(root / "train" / "extra.png", FixtureImage("extra.png", [FixtureBox("cat", 1, 1, 5, 5)]), CLASSES)
    index = load_detection_dataset(root, test_fraction=0)
    assert any("1 image file(s) in train/ are not listed" in n for n in index.notes)


def test_val_is_held_out_when_missing_and_same_folder_splits_are_not_splits(tmp_path):
    images = [FixtureImage(f"i{i}.png", [FixtureBox(CLASSES[i % 3], 2, 2, 30, 30)]) for i in range(12)]
    root = write_yolo(tmp_path / "y", images, CLASSES)
    doc = yaml.safe_load((root / "data.yaml").read_text())
    doc["val"] = doc["train"]
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    index = load_detection_dataset(root, val_fraction=0.25, test_fraction=0.25, seed=3)
    assert set(index.splits) == {"train", "val", "test"}
    assert index.seed == 3
    assert any("lists exactly the images of the train split" in n for n in index.notes)
    assert all(index.image_counts(s)[c] >= 1 for s in index.splits for c in CLASSES)
    names = [s.path.name for v in index.splits.values() for s in v]
    assert sorted(names) == sorted(im.name for im in images)


def test_split_json_roundtrips_boxes_exactly(tmp_path):
    from headstart.data.detection import load_detection_split, save_detection_split

    root = write_voc(tmp_path / "v", standard_images(), CLASSES)
    index = load_detection_dataset(root, test_fraction=0)
    path = save_detection_split(index, tmp_path / "run" / "split.json")
    record = json.loads(path.read_text())
    assert record["task"] == "detect" and record["classes"] == sorted(CLASSES)
    again = load_detection_split(path)
    assert again.splits == index.splits and again.classes == index.classes
    assert again.fingerprint() == index.fingerprint()
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_roboflow_super_category_is_a_noted_class(tmp_path):
    root = write_coco(tmp_path / "rf", standard_images(), CLASSES, layout="coco-export")
    from tests.data.detection.conftest import edit_json

    for folder in ("train", "valid"):
        edit_json(root / folder / "_annotations.coco.json",
                  lambda d: d["categories"].insert(0, {"id": 0, "name": "animals", "supercategory": "none"}))
    index = load_detection_dataset(root, test_fraction=0, strict=True)  # a note is no problem
    assert index.classes == ["animals", *CLASSES]
    assert any("'animals' (id 0) has no boxes (Roboflow exports list the dataset's super-category" in n
               for n in index.notes)


def test_yolo_yaml_elsewhere_with_a_path_key(tmp_path):
    root = write_yolo(tmp_path / "data" / "pets", standard_images(), CLASSES)
    config = tmp_path / "configs" / "pets.yaml"
    config.parent.mkdir()
    doc = yaml.safe_load((root / "data.yaml").read_text())
    config.write_text(yaml.safe_dump({**doc, "path": "../data/pets"}))
    index = load_detection_dataset(config, test_fraction=0)
    assert index.root == root
    _assert_same(_as_table(index), _expected(standard_images()))
