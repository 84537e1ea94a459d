"""What a reader hands to :mod:`~headstart.data.detection.assemble`: the images and boxes exactly
as the annotation files state them, before any image is opened or any box is checked.

Each box and image carries its source (the annotation file) and its place in it (``'line 3'``,
``'annotation 17'``, ``'object 2'``), so a problem found later names the line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from headstart.data.detection.problems import Problem

__all__ = ["ParsedBox", "ParsedImage", "ParsedDataset", "POOL", "SPLIT_ORDER", "relative_name"]

POOL = "all"
"""The split name of images that came without a split (an auto split assigns them later)."""

SPLIT_ORDER = ("train", "val", "test", POOL)


@dataclass
class ParsedBox:
    """One box as written: ``(x1, y1, x2, y2)`` in pixels, or in fractions of the image's width
    and height when ``normalised`` (YOLO; the image's real size is known only after opening it)."""

    box: tuple[float, float, float, float]
    label: int
    ignore: bool
    source: str
    where: str | None
    normalised: bool = False


@dataclass
class ParsedImage:
    """One image listed by the dataset, its split and its boxes (possibly none: a background image).

    ``declared_size`` is the ``(width, height)`` the annotation file states (COCO, VOC), checked
    against the file; ``None`` when the format has none (YOLO). ``source``/``where`` name the entry
    that describes the image; ``listed_at`` the (file, line) that put it in its split when that is
    another file (VOC's ImageSets lists), else ``None``.
    """

    path: Path
    split: str
    boxes: list[ParsedBox] = field(default_factory=list)
    declared_size: tuple[int, int] | None = None
    source: str = ""
    where: str | None = None
    listed_at: tuple[str, str | None] | None = None


@dataclass
class ParsedDataset:
    """A reader's result: the classes (index = label), the images, and what it found wrong."""

    root: Path
    layout: str
    classes: list[str]
    images: list[ParsedImage]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form when it lies below it, else the full path."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()
