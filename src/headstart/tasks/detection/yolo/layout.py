"""headstart's checked detection records written as the YOLO layout Ultralytics trains on, inside
the run folder (never in the user's dataset)::

    <run>/yolo/data/data.yaml
    <run>/yolo/data/images/{train,val,test}/000017_name.jpg   # links to the user's images
    <run>/yolo/data/labels/{train,val,test}/000017_name.txt   # written from headstart's boxes

Images are hard links where the file system allows, else symbolic links, else copies; an image in
a format Ultralytics does not read (GIF, ...) is decoded by headstart and written as PNG. The
labels come from headstart's records (COCO, YOLO or VOC, already validated): one ``class cx cy w
h`` line per box, normalised to the upright image. Boxes marked ignore (VOC difficult, COCO
iscrowd) are left out: YOLO labels have no way to say "neither reward nor penalise".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import yaml

__all__ = ["write_yolo_dataset", "LINKABLE_SUFFIXES"]

# image formats Ultralytics decodes (its IMG_FORMATS, minus the ones headstart does not read)
LINKABLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _place_image(src: Path, dest: Path) -> str:
    """Link (hard, then symbolic) or copy ``src`` to ``dest``; returns how."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
        return "hardlink"
    except OSError:
        pass
    try:
        dest.symlink_to(src.resolve())
        return "symlink"
    except OSError:
        shutil.copy2(src, dest)
        return "copy"


def _label_lines(sample) -> list[str]:
    w, h = float(sample.width), float(sample.height)
    lines = []
    for (x1, y1, x2, y2), label, ignored in zip(
        sample.boxes, sample.labels, sample.ignore or [False] * len(sample.boxes)
    ):
        if ignored:
            continue
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


def write_yolo_dataset(splits: Mapping[str, Sequence], classes: Sequence[str], dest: str | Path) -> dict:
    """Write ``splits`` (split name -> BoxSamples) under ``dest``; returns ``{"yaml": path,
    "splits": {split: n_images}, "placed": {how: count}}``. ``dest`` is emptied first."""
    from headstart._io import atomic_write_text

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    placed: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for split, samples in splits.items():
        if not samples:
            continue
        img_dir, lab_dir = dest / "images" / split, dest / "labels" / split
        img_dir.mkdir(parents=True)
        lab_dir.mkdir(parents=True)
        for i, sample in enumerate(samples):
            src = Path(sample.path)
            stem = f"{i:06d}_{src.stem}"
            if src.suffix.lower() in LINKABLE_SUFFIXES:
                how = _place_image(src, img_dir / f"{stem}{src.suffix.lower()}")
            else:
                from headstart.data.decode import open_rgb

                open_rgb(src).save(img_dir / f"{stem}.png")
                how = "decoded"
            placed[how] = placed.get(how, 0) + 1
            (lab_dir / f"{stem}.txt").write_text("\n".join(_label_lines(sample)) + "\n", encoding="utf-8")
        sizes[split] = len(samples)
    data = {
        "path": str(dest.resolve()),
        "train": "images/train",
        "val": "images/val",
        **({"test": "images/test"} if "test" in sizes else {}),
        "names": {i: name for i, name in enumerate(classes)},
    }
    atomic_write_text(dest / "data.yaml", yaml.safe_dump(data, sort_keys=False))
    return {"yaml": dest / "data.yaml", "splits": sizes, "placed": placed}
