"""Fixture writers for detection datasets: the same images and boxes written as COCO, COCO export,
a single COCO JSON, YOLO or Pascal VOC, into a folder (usually under ``tmp_path``).

Describe a dataset once as a list of :class:`FixtureImage` (boxes in absolute ``x1, y1, x2, y2``
pixels, 0-based), then write it in any layout::

    images = [FixtureImage("a.png", [FixtureBox("cat", 4, 6, 20, 30)]), FixtureImage("b.png", split="val")]
    root = write_yolo(tmp_path / "yolo", images, ["cat", "dog"])

Each writer draws the images (a solid background with one filled rectangle per box, coloured by
class) with Pillow and returns the dataset root. Reusable by any detection test: import from
``tests.data.detection.conftest`` or use the fixtures below.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from xml.sax.saxutils import escape

import pytest
from PIL import Image, ImageDraw

__all__ = [
    "FixtureBox",
    "FixtureImage",
    "draw_image",
    "write_coco",
    "write_yolo",
    "write_voc",
    "edit_json",
    "tree_digest",
    "standard_images",
    "STANDARD_CLASSES",
]

_COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (200, 200, 40), (160, 40, 200), (40, 200, 200)]
_EXPORT_FOLDER = {"train": "train", "val": "valid", "test": "test"}


@dataclass
class FixtureBox:
    cls: str
    x1: float
    y1: float
    x2: float
    y2: float
    ignore: bool = False

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (float(self.x1), float(self.y1), float(self.x2), float(self.y2))


@dataclass
class FixtureImage:
    name: str
    boxes: list[FixtureBox] = field(default_factory=list)
    split: str = "train"
    size: tuple[int, int] = (64, 48)


STANDARD_CLASSES = ["cat", "dog", "bird"]


def standard_images() -> list[FixtureImage]:
    """Six 64x48 images, 3 classes, one background image, fractional and whole-image boxes."""
    return [
        FixtureImage("t1.png", [FixtureBox("cat", 4, 6, 20, 30), FixtureBox("dog", 30, 10, 60, 40)]),
        FixtureImage("t2.png", [FixtureBox("dog", 10, 10, 26.5, 22.25)]),
        FixtureImage("t3.png", [FixtureBox("bird", 0, 0, 64, 48)]),
        FixtureImage("t4.png", []),
        FixtureImage("v1.png", [FixtureBox("cat", 5, 5, 15, 15), FixtureBox("bird", 40, 20, 50, 47)], split="val"),
        FixtureImage("v2.png", [FixtureBox("dog", 20, 8, 44, 40)], split="val"),
    ]


def square_images(n: int, n_train: int, n_val: int, *, size: tuple[int, int] = (64, 64),
                  seed: int = 0) -> list[FixtureImage]:
    """``n`` images of ``size`` (width, height) with one or two 12-24 px red or blue squares, split
    train / val / test by index: the small two-class detection set the fit, tune, rank and export
    tests share (seeded, so every caller gets the same images)."""
    import numpy as np

    width, height = size
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        split = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
        boxes = []
        for _ in range(1 + i % 2):
            side = int(rng.integers(12, 24))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            boxes.append(FixtureBox("red" if rng.random() < 0.5 else "blue", x, y, x + side, y + side))
        images.append(FixtureImage(f"im{i:02d}.png", boxes, split=split, size=size))
    return images


def draw_image(path: Path, image: FixtureImage, classes: Sequence[str]) -> Path:
    """A solid grey image of ``image.size`` with one filled rectangle per box."""
    picture = Image.new("RGB", image.size, (128, 128, 128))
    draw = ImageDraw.Draw(picture)
    for b in image.boxes:
        colour = _COLOURS[list(classes).index(b.cls) % len(_COLOURS)] if b.cls in classes else (0, 0, 0)
        x1, y1, x2, y2 = b.xyxy
        if x2 > x1 and y2 > y1:
            draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def _num(v: float):
    v = float(v)
    return int(v) if v.is_integer() else v


def _splits(images: Sequence[FixtureImage]) -> list[str]:
    return [s for s in ("train", "val", "test", "all") if any(im.split == s for im in images)]


def _coco_json(images: Sequence[FixtureImage], classes: Sequence[str], next_ann: list[int]) -> dict:
    out = {
        "info": {"description": "headstart test fixture"},
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": c, "supercategory": "thing"} for i, c in enumerate(classes)],
    }
    for image_id, im in enumerate(images):  # 0-based per file, as Roboflow writes them
        out["images"].append({"id": image_id, "file_name": im.name, "width": im.size[0], "height": im.size[1]})
        for b in im.boxes:
            x1, y1, x2, y2 = b.xyxy
            w, h = x2 - x1, y2 - y1
            out["annotations"].append({
                "id": next_ann[0], "image_id": image_id,
                "category_id": list(classes).index(b.cls) + 1 if b.cls in classes else 999,
                "bbox": [_num(x1), _num(y1), _num(w), _num(h)], "area": _num(w * h),
                "iscrowd": int(b.ignore), "segmentation": [],
            })
            next_ann[0] += 1
    return out


def write_coco(
    root: Path,
    images: Sequence[FixtureImage],
    classes: Sequence[str],
    *,
    layout: str = "coco",
    image_folder: str = "split",
) -> Path:
    """Write ``images`` in a COCO layout and return ``root``.

    ``layout``: ``'coco'`` (``annotations/instances_<split>.json``; images in ``<split>/``, or in
    ``images/<split>/`` with ``image_folder='images'``), ``'coco-export'``
    (``train/``, ``valid/``, ``test/`` each with ``_annotations.coco.json``) or ``'single'``
    (``annotations.json`` with every image in ``images/``, splits ignored). Category ids start at 1.
    """
    root = Path(root)
    next_ann = [1]
    if layout == "single":
        for im in images:
            draw_image(root / "images" / im.name, im, classes)
        (root / "annotations.json").write_text(json.dumps(_coco_json(images, classes, next_ann)))
        return root
    for split in _splits(images):
        members = [im for im in images if im.split == split]
        if layout == "coco":
            folder = root / split if image_folder == "split" else root / "images" / split
            json_path = root / "annotations" / f"instances_{split}.json"
        elif layout == "coco-export":
            folder = root / _EXPORT_FOLDER[split]
            json_path = folder / "_annotations.coco.json"
        else:
            raise ValueError(layout)
        for im in members:
            draw_image(folder / im.name, im, classes)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(_coco_json(members, classes, next_ann), indent=1))
    return root


def write_yolo(
    root: Path,
    images: Sequence[FixtureImage],
    classes: Sequence[str],
    *,
    empty_label_files: bool = False,
    names_as_dict: bool = False,
    yaml_name: str = "data.yaml",
) -> Path:
    """Write ``images`` as an Ultralytics dataset: ``data.yaml``, ``images/<split>/`` and
    ``labels/<split>/<stem>.txt`` (normalised ``class cx cy w h``). Images without boxes get no
    label file (an empty one with ``empty_label_files``). YOLO has no ignore flag: boxes marked
    ``ignore`` raise ValueError."""
    root = Path(root)
    for im in images:
        draw_image(root / "images" / im.split / im.name, im, classes)
        w, h = im.size
        lines = []
        for b in im.boxes:
            if b.ignore:
                raise ValueError("YOLO labels cannot mark a box as ignored")
            x1, y1, x2, y2 = b.xyxy
            cls = list(classes).index(b.cls) if b.cls in classes else 99
            values = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
            lines.append(f"{cls} " + " ".join(repr(v) for v in values))
        label = root / "labels" / im.split / (Path(im.name).stem + ".txt")
        if lines or empty_label_files:
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("\n".join(lines) + ("\n" if lines else ""))
    names = {i: c for i, c in enumerate(classes)} if names_as_dict else list(classes)
    doc = {s: f"images/{s}" for s in _splits(images)}
    import yaml

    (root / yaml_name).write_text(yaml.safe_dump({**doc, "names": names}, sort_keys=False))
    return root


def write_voc(
    root: Path,
    images: Sequence[FixtureImage],
    classes: Sequence[str],
    *,
    image_sets: bool = True,
    class_file: str | None = None,
) -> Path:
    """Write ``images`` as Pascal VOC: ``Annotations/<stem>.xml`` (1-based pixel coordinates:
    ``xmin = x1 + 1``), ``JPEGImages/`` and ``ImageSets/Main/<split>.txt`` (unless ``image_sets``
    is false). ``ignore`` boxes are written ``difficult``; ``class_file`` (``'labels.txt'``) lists
    the classes."""
    root = Path(root)
    for im in images:
        draw_image(root / "JPEGImages" / im.name, im, classes)
        objects = []
        for b in im.boxes:
            x1, y1, x2, y2 = b.xyxy
            objects.append(
                f"  <object>\n    <name>{escape(b.cls)}</name>\n    <pose>Unspecified</pose>\n"
                f"    <truncated>0</truncated>\n    <difficult>{int(b.ignore)}</difficult>\n"
                f"    <bndbox>\n      <xmin>{_num(x1 + 1)}</xmin>\n      <ymin>{_num(y1 + 1)}</ymin>\n"
                f"      <xmax>{_num(x2)}</xmax>\n      <ymax>{_num(y2)}</ymax>\n    </bndbox>\n  </object>\n"
            )
        xml = (
            f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(im.name)}</filename>\n"
            f"  <size>\n    <width>{im.size[0]}</width>\n    <height>{im.size[1]}</height>\n"
            f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n{''.join(objects)}</annotation>\n"
        )
        path = root / "Annotations" / (Path(im.name).stem + ".xml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(xml)
    if image_sets:
        folder = root / "ImageSets" / "Main"
        folder.mkdir(parents=True, exist_ok=True)
        for split in _splits(images):
            ids = [Path(im.name).stem for im in images if im.split == split]
            (folder / f"{split}.txt").write_text("\n".join(ids) + "\n")
    if class_file:
        (root / class_file).write_text("\n".join(classes) + "\n")
    return root


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    """Load the JSON file, let ``edit`` change it in place, write it back."""
    data = json.loads(Path(path).read_text())
    edit(data)
    Path(path).write_text(json.dumps(data, indent=1))


def tree_digest(root: Path) -> str:
    """Hash of every file's relative path, bytes and mtime under ``root`` (to prove read-only)."""
    digest = hashlib.sha256()
    for current, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files + dirs):
            path = Path(current) / name
            digest.update(path.relative_to(root).as_posix().encode())
            if path.is_file():
                digest.update(path.read_bytes())
                digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


@pytest.fixture
def det_images() -> list[FixtureImage]:
    return standard_images()


@pytest.fixture
def det_classes() -> list[str]:
    return list(STANDARD_CLASSES)
