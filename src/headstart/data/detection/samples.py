"""The records of the detection data layer: :class:`BoxSample` (one image and its boxes) and
:class:`DetectionIndex` (the images of each split, the classes, and what was repaired or left out).

The counterparts of :mod:`headstart.data.samples` for classification. They hold paths and numbers
only (no pixels, no torch), so they are cheap to build, to save as ``split.json`` and to fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from headstart.data.detection.problems import Problem
from headstart.data.detection.summary import DetectionSummary

__all__ = ["Box", "BoxSample", "DetectionIndex", "LAYOUTS"]

Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in absolute pixels of the upright image, ``x1 < x2`` and ``y1 < y2``."""

LAYOUTS = ("coco", "coco-export", "yolo", "voc")
"""The on-disk layouts :func:`~headstart.data.detection.load_detection_dataset` reads."""


@dataclass(frozen=True)
class BoxSample:
    """One image and its boxes.

    ``boxes`` are ``(x1, y1, x2, y2)`` floats in pixels of the upright image (EXIF orientation
    applied), already checked: inside the image, positive width and height, no duplicates.
    ``labels[i]`` indexes ``DetectionIndex.classes``. ``ignore[i]`` marks boxes that are known but
    neither trained on nor scored (VOC ``difficult``, COCO ``iscrowd``). ``image_id`` is unique and
    stable within the dataset (assigned in order of the images' paths, whatever the split).
    """

    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    labels: tuple[int, ...] = ()
    ignore: tuple[bool, ...] = ()
    image_id: int = 0

    @property
    def num_boxes(self) -> int:
        return len(self.boxes)

    @property
    def is_negative(self) -> bool:
        """True for an image without any box (a background image)."""
        return not self.boxes


@dataclass
class DetectionIndex:
    """Images with their boxes, per split. ``splits`` always has ``'train'`` and ``'val'``, and
    ``'test'`` when the dataset has a test split or ``test_fraction > 0``."""

    root: Path
    layout: str
    classes: list[str]
    splits: dict[str, list[BoxSample]]
    problems: list[Problem] = field(default_factory=list)
    """Boxes, lines and images repaired or left out, each with the file, the place and the fix."""
    notes: list[str] = field(default_factory=list)
    """Decisions taken on the user's behalf (split fallbacks, classes without boxes...)."""
    seed: int | None = None
    """Seed of the split (``None`` when every split came with the dataset)."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def box_counts(self, split: str = "train", *, include_ignored: bool = False) -> dict[str, int]:
        """Boxes per class name in ``split`` (every class included, 0 when absent). Boxes marked
        ``ignore`` are left out unless ``include_ignored``."""
        counter: Counter[int] = Counter()
        for s in self.splits.get(split, []):
            counter.update(lab for lab, ign in zip(s.labels, s.ignore) if include_ignored or not ign)
        return {name: counter.get(i, 0) for i, name in enumerate(self.classes)}

    def image_counts(self, split: str = "train") -> dict[str, int]:
        """Images per class name in ``split``: those with at least one (not ignored) box of it."""
        counter: Counter[int] = Counter()
        for s in self.splits.get(split, []):
            counter.update({lab for lab, ign in zip(s.labels, s.ignore) if not ign})
        return {name: counter.get(i, 0) for i, name in enumerate(self.classes)}

    def summary(self, input_size: int | None = None) -> DetectionSummary:
        """Images and boxes per split and class, negatives and the box-size distribution; with
        ``input_size``, also the box sizes once each image is resized so its longer side is
        ``input_size`` (what a detector with that input sees)."""
        return DetectionSummary.from_splits(
            root=self.root,
            layout=self.layout,
            classes=self.classes,
            splits=self.splits,
            problems=self.problems,
            notes=self.notes,
            input_size=input_size,
        )

    def fingerprint(self) -> str:
        """SHA-256 over the class names and, per image, its split, path relative to the root,
        size, boxes, labels and ignore flags. Changes when an image or box is added, removed,
        moved or relabelled; unlike the classification fingerprint it reads no file times, so a
        copied dataset (or one rebuilt from ``split.json``) keeps its fingerprint."""
        rows = []
        for split, samples in self.splits.items():
            for s in samples:
                try:
                    rel = s.path.relative_to(self.root).as_posix()
                except ValueError:
                    rel = s.path.as_posix()
                row = [split, rel, s.width, s.height, [list(b) for b in s.boxes], list(s.labels), list(s.ignore)]
                rows.append(json.dumps(row))
        digest = hashlib.sha256()
        digest.update(json.dumps(list(self.classes)).encode() + b"\n\n")
        for row in sorted(rows):
            digest.update(row.encode() + b"\n")
        return digest.hexdigest()
