"""Checks that run before any training, so a broken dataset fails in seconds with a message that
names the files or classes to fix -- not an hour later with a stack trace from a DataLoader worker.

Fatal problems raise (:class:`~headstart.errors.DatasetNotFoundError` or
:class:`~headstart.errors.DataError`); recoverable ones (unreadable files when not strict, images
below ``min_image_size``, classes absent from an evaluation split) are collected and shown in the
:class:`DataSummary`, so nothing is dropped silently.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from headstart.data.decode import IMAGE_EXTENSIONS, check_image
from headstart.data.discover import Discovery
from headstart.errors import DataError, DatasetNotFoundError

__all__ = [
    "DataSummary",
    "check_structure",
    "check_images",
    "median_short_side",
    "check_split_classes",
    "format_file_list",
]

_SHOWN = 10  # files listed in a message before "... and N more"


def format_file_list(items: Sequence[tuple[Path, object]] | Sequence[Path], shown: int = _SHOWN) -> str:
    """One ``  path: reason`` line per item (the first ``shown``), then ``  ... and N more``."""
    lines = []
    for item in list(items)[:shown]:
        if isinstance(item, tuple):
            lines.append(f"  {item[0]}: {item[1]}")
        else:
            lines.append(f"  {item}")
    if len(items) > shown:
        lines.append(f"  ... and {len(items) - shown} more")
    return "\n".join(lines)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def check_structure(found: Discovery) -> None:
    """Raise when the dataset cannot possibly be trained on: no images, fewer than two classes, or
    a class that has no images at all."""
    n_images = sum(len(pairs) for pairs in found.files.values())
    where = str(found.source or found.root)
    if n_images == 0:
        if found.layout == "csv":
            raise DatasetNotFoundError(
                f"None of the rows of the CSV file {where!r} names an image file"
                f" ({', '.join(sorted(IMAGE_EXTENSIONS))})."
            )
        if not any(found.class_dirs.values()):
            raise DatasetNotFoundError(
                f"The dataset folder {where!r} is empty: it has no class subfolders. Put the images"
                " of each class in a subfolder named after the class (for example cat/ and dog/)."
            )
        raise DatasetNotFoundError(
            f"The dataset folder {where!r} has class subfolders ({_quoted(found.classes[:10])})"
            f" but no image files in them. Supported suffixes: {', '.join(sorted(IMAGE_EXTENSIONS))}."
        )
    counts = {c: 0 for c in found.classes}
    for pairs in found.files.values():
        for _, label in pairs:
            counts[label] += 1
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(
            f"{len(empty)} class(es) have no images: {_quoted(empty)} (in {where!r}). Add images to"
            " them or remove the empty folders."
        )
    if len(counts) < 2:
        raise DataError(
            f"A classifier needs at least 2 classes; {where!r} has {len(counts)}"
            f" ({_quoted(counts)}). Put each class's images in its own subfolder, or check the"
            " label column of the CSV."
        )


def check_images(
    paths: Sequence[Path],
    *,
    min_image_size: int = 1,
    strict: bool = False,
    progress: bool = False,
    num_threads: int | None = None,
    sizes: list[tuple[int, int]] | None = None,
) -> tuple[list[tuple[Path, str]], list[tuple[Path, tuple[int, int]]]]:
    """Decode every image once; return ``(unreadable, too_small)``.

    ``sizes``, when given, receives the ``(width, height)`` of every readable image (for the
    native resolution of the dataset, :func:`median_short_side`).

    ``unreadable`` lists ``(file, reason)``; with ``strict=True`` any unreadable file raises a
    :class:`~headstart.errors.DataError` that lists them instead. ``too_small`` lists ``(file,
    (width, height))`` for images whose shorter side is below ``min_image_size``: they are kept (the
    model upsamples them) but reported, since they are often thumbnails or icons saved by mistake.

    Decoding uses a thread pool: Pillow releases the GIL while decoding, so threads scale across
    cores without pickling costs.
    """
    paths = list(paths)
    threads = num_threads or min(8, os.cpu_count() or 1)
    results: list[tuple[tuple[int, int] | None, str | None]]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        mapped = pool.map(check_image, paths)
        if progress and len(paths) > 0:
            from rich.progress import track

            mapped = track(mapped, total=len(paths), description="Checking images")
        results = list(mapped)
    unreadable = [(p, reason) for p, (_, reason) in zip(paths, results, strict=True) if reason is not None]
    too_small = [
        (p, size)
        for p, (size, _) in zip(paths, results, strict=True)
        if size is not None and min(size) < min_image_size
    ]
    if sizes is not None:
        sizes.extend(size for size, _ in results if size is not None)
    if strict and unreadable:
        raise DataError(
            f"{len(unreadable)} image(s) cannot be read (data.strict is on):\n"
            f"{format_file_list(unreadable)}\nRe-export or delete these files, or turn data.strict"
            " off to skip and list them instead."
        )
    return unreadable, too_small


def median_short_side(sizes: Sequence[tuple[int, int]]) -> int | None:
    """The median of the shorter side over ``(width, height)`` pairs; ``None`` for none."""
    if not sizes:
        return None
    shorts = sorted(min(w, h) for w, h in sizes)
    return int(shorts[len(shorts) // 2])


def check_split_classes(
    counts: Mapping[str, Mapping[str, int]], provided: Iterable[str] = ("train", "val", "test")
) -> list[str]:
    """Compare the classes of each split with those of ``train``.

    A class present in val/test but absent from train is fatal (the model can never predict it) and
    raises a :class:`~headstart.errors.DataError` naming the classes and splits. A class absent from
    val or test only makes that split blind to it: returned as a warning for the summary. Only
    splits listed in ``provided`` (given by the user rather than carved out) are checked for the
    fatal case; carved splits are covered by the split notes.
    """
    provided = set(provided)
    train = {c for c, n in counts.get("train", {}).items() if n > 0}
    problems, warnings = [], []
    for split, per_class in counts.items():
        if split == "train":
            continue
        present = {c for c, n in per_class.items() if n > 0}
        extra = sorted(present - train)
        if extra and split in provided:
            problems.append(f"{split} has {_quoted(extra)}, which train lacks")
        missing = sorted(train - present)
        if missing:
            warnings.append(
                f"The {split} split has no images of {len(missing)} class(es): {_quoted(missing)};"
                f" {split} metrics cannot measure them."
            )
    if problems:
        raise DataError(
            "Classes differ between splits: "
            + "; ".join(problems)
            + ". The model cannot learn a class it never sees in training: add training images of"
            " these classes, or remove them from the other splits."
        )
    return warnings


@dataclass
class DataSummary:
    """What is in the dataset, per split and class, and what was skipped or looks suspicious."""

    root: Path
    layout: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    """Images per class per split: ``counts['train']['cat']``."""
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    too_small: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Everything decided on the user's behalf (split fallbacks, classes missing from a split)."""
    median_short_side: int | None = None
    """Median shorter side (px) of the readable images, measured during the scan."""

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    @property
    def num_too_small(self) -> int:
        return len(self.too_small)

    @property
    def totals(self) -> dict[str, int]:
        return {split: sum(per.values()) for split, per in self.counts.items()}

    @property
    def imbalance_ratio(self) -> float:
        """Largest over smallest class count in train (1.0 = balanced; inf if a class has none)."""
        train = [self.counts.get("train", {}).get(c, 0) for c in self.classes]
        if not train or max(train) == 0:
            return float("nan")
        return max(train) / min(train) if min(train) > 0 else math.inf

    def to_dict(self) -> dict:
        """JSON-ready form, for run reports."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "counts": {s: dict(per) for s, per in self.counts.items()},
            "totals": self.totals,
            "imbalance_ratio": self.imbalance_ratio,
            "skipped": [[str(p), r] for p, r in self.skipped],
            "too_small": [[str(p), list(s)] for p, s in self.too_small],
            "notes": list(self.notes),
            "median_short_side": self.median_short_side,
        }

    def format(self, max_files: int = _SHOWN) -> str:
        """A plain-text table of images per class and split, then skipped files and notes."""
        splits = list(self.counts)
        name_width = max([len("class"), len("total")] + [len(c) for c in self.classes])
        widths = [max(len(s), 6) for s in splits]
        header = "  ".join(["class".ljust(name_width)] + [s.rjust(w) for s, w in zip(splits, widths, strict=True)])
        lines = [
            f"Dataset {self.root} ({self.layout}): {len(self.classes)} classes, "
            + ", ".join(f"{n} {s}" for s, n in self.totals.items()),
            header,
            "-" * len(header),
        ]
        for c in self.classes:
            cells = [str(self.counts[s].get(c, 0)).rjust(w) for s, w in zip(splits, widths, strict=True)]
            lines.append("  ".join([c.ljust(name_width)] + cells))
        lines.append("-" * len(header))
        lines.append(
            "  ".join(
                ["total".ljust(name_width)]
                + [str(self.totals[s]).rjust(w) for s, w in zip(splits, widths, strict=True)]
            )
        )
        ratio = self.imbalance_ratio
        lines.append(f"Imbalance (largest / smallest train class): {ratio:.1f}")
        if self.median_short_side is not None:
            lines.append(f"Median image short side: {self.median_short_side}px")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} unreadable or unusable file(s):")
            lines.append(format_file_list(self.skipped, max_files))
        if self.too_small:
            items = [(p, f"{w}x{h} px") for p, (w, h) in self.too_small]
            lines.append(f"{len(self.too_small)} image(s) smaller than the minimum size (kept):")
            lines.append(format_file_list(items, max_files))
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
