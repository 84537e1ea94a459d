"""benchmarks/detection_data.py: glyphs composited onto real photos, with exact boxes, as COCO."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage")

ROOT = Path(__file__).resolve().parents[2]


def _load_module():
    name = "headstart_benchmarks_detection_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "detection_data.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


dd = _load_module()
try:
    dd.check_fonts()
except FileNotFoundError as exc:  # pragma: no cover - a machine without fonts-dejavu-core
    pytest.skip(str(exc), allow_module_level=True)

TINY = dict(n_train=6, n_val=2, n_test=2, image_size=96, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny lossless dataset with some negatives."""
    out = tmp_path_factory.mktemp("glyphs")
    stats = dd.make_dataset(out, **TINY, negative_fraction=0.34, image_format="png")
    return out, stats


def _coco(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"instances_{split}.json").read_text())


def _check_coco(coco: dict, image_dir: Path) -> None:
    """What pycocotools' COCO() and evaluation rely on, checked by hand (pycocotools is optional)."""
    assert {"images", "annotations", "categories"} <= coco.keys()
    images = {im["id"]: im for im in coco["images"]}
    assert len(images) == len(coco["images"])
    categories = {c["id"] for c in coco["categories"]}
    assert len(categories) == len(coco["categories"]) and 0 not in categories
    assert all(isinstance(c["name"], str) and c["name"] for c in coco["categories"])
    ann_ids = [a["id"] for a in coco["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids) and 0 not in ann_ids
    for im in coco["images"]:
        assert isinstance(im["id"], int) and isinstance(im["width"], int) and isinstance(im["height"], int)
        with Image.open(image_dir / im["file_name"]) as img:
            assert img.size == (im["width"], im["height"])
    for a in coco["annotations"]:
        im = images[a["image_id"]]
        assert a["category_id"] in categories and a["iscrowd"] == 0
        assert len(a["bbox"]) == 4 and all(isinstance(v, float) for v in a["bbox"])
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im["width"] and y + h <= im["height"], "box leaves its image"
        assert a["area"] == pytest.approx(w * h)


def test_coco_structure_valid(tiny):
    out, stats = tiny
    for split in dd.SPLITS:
        coco = _coco(out, split)
        _check_coco(coco, out / split)
        assert len(coco["images"]) == TINY[f"n_{split}"]
        assert len(coco["annotations"]) == stats["splits"][split]["boxes"]
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(im["file_name"] for im in coco["images"])
    pycocotools = pytest.importorskip("pycocotools.coco")
    for split in dd.SPLITS:
        api = pycocotools.COCO(str(out / "annotations" / f"instances_{split}.json"))
        assert len(api.getImgIds()) == TINY[f"n_{split}"]


def test_deterministic_for_a_seed(tiny, tmp_path):
    out, _ = tiny
    again = tmp_path / "again"
    dd.make_dataset(again, **TINY, negative_fraction=0.34, image_format="png")
    for split in dd.SPLITS:
        name = f"annotations/instances_{split}.json"
        assert (again / name).read_bytes() == (out / name).read_bytes()
        for image in (out / split).iterdir():
            assert (again / split / image.name).read_bytes() == image.read_bytes()
    other = tmp_path / "other"
    dd.make_dataset(other, **{**TINY, "seed": 4}, negative_fraction=0.34, image_format="png")
    assert (other / "annotations/instances_train.json").read_bytes() != (out / "annotations/instances_train.json").read_bytes()


def test_boxes_cover_every_change_and_are_tight(tiny):
    """Rebuild each background from its record: outside the boxes the image equals it exactly; each
    edge row and column of every box holds a changed pixel."""
    out, _ = tiny
    n_boxes = 0
    for split in dd.SPLITS:
        coco = _coco(out, split)
        for im in coco["images"]:
            bg = im["background"]
            background = dd.render_background(dd.load_photo(bg["photo"]), bg["crop"], bg["flip"], im["width"])
            image = np.asarray(Image.open(out / split / im["file_name"]).convert("RGB"))
            changed = (image != background).any(axis=-1)
            covered = np.zeros_like(changed)
            for a in coco["annotations"]:
                if a["image_id"] != im["id"]:
                    continue
                x, y, w, h = (int(v) for v in a["bbox"])
                covered[y : y + h, x : x + w] = True
                inside = changed[y : y + h, x : x + w]
                assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
                n_boxes += 1
            assert not (changed & ~covered).any(), f"{split}/{im['file_name']}: changed pixels outside every box"
    assert n_boxes > 0


def test_box_is_exact_tight_box_on_flat_background():
    """On a flat background the box is exactly the bounding box of the changed pixels, at every size."""
    fonts = dd.check_fonts()
    background = np.full((160, 160, 3), 128, np.uint8)
    sizes = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        image, objects = dd.compose_scene(rng, background, [seed % len(dd.CLASSES)], dd.CLASSES, fonts,
                                          max_size_frac=0.9)
        assert len(objects) == 1
        rows, cols = np.nonzero((image != background).any(axis=-1))
        x, y, w, h = objects[0][1]
        assert (x, y, w, h) == (cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min())
        sizes.add(dd.size_class(w * h))
    assert sizes == {"small", "medium", "large"}


def test_train_and_test_backgrounds_from_disjoint_photos(tiny, tmp_path):
    out, stats = tiny
    assert not set(dd.TRAIN_PHOTOS) & set(dd.TEST_PHOTOS)
    used = {split: {im["background"]["photo"] for im in _coco(out, split)["images"]} for split in dd.SPLITS}
    assert used["train"] | used["val"] <= set(dd.TRAIN_PHOTOS)
    assert used["test"] <= set(dd.TEST_PHOTOS)
    assert stats["splits"]["test"]["photos"].keys() == set(dd.TEST_PHOTOS)
    with pytest.raises(ValueError, match="overlap"):
        dd.make_dataset(tmp_path, n_train=1, n_val=0, n_test=1, train_photos=("coffee", "rocket"), test_photos=("rocket",))


def test_negatives_when_requested(tiny, tmp_path):
    out, stats = tiny
    coco = _coco(out, "train")
    with_boxes = {a["image_id"] for a in coco["annotations"]}
    negatives = [im for im in coco["images"] if im["id"] not in with_boxes]
    assert len(negatives) == stats["splits"]["train"]["negatives"] == round(6 * 0.34) == 2
    none = dd.make_dataset(tmp_path, n_train=4, n_val=0, n_test=0, image_size=96, negative_fraction=0.0)
    assert none["splits"]["train"]["negatives"] == 0 and none["splits"]["train"]["images_without_boxes"] == 0
    coco = _coco(tmp_path, "train")
    counts = [sum(a["image_id"] == im["id"] for a in coco["annotations"]) for im in coco["images"]]
    assert all(1 <= c <= 6 for c in counts)


def test_regenerating_replaces_only_our_images(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "999999.jpg").write_bytes(b"stale")
    (tmp_path / "README.md").write_text("kept")
    dd.make_dataset(tmp_path, n_train=2, n_val=0, n_test=0, image_size=64)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["000001.jpg", "000002.jpg"]
    assert (tmp_path / "README.md").read_text() == "kept"


def test_missing_font_names_it_and_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"DejaVuSans\.ttf.*apt-get install fonts-dejavu-core"):
        dd.check_fonts(font_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="fonts-dejavu-core"):
        dd.make_dataset(tmp_path / "d", n_train=1, n_val=0, n_test=0, font_dir=tmp_path)
