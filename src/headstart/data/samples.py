"""The records of the data layer: :class:`Sample` (one file and its label) and :class:`DatasetIndex`
(files and labels per split).

Kept apart from :mod:`headstart.data.index` (which builds them) so that :mod:`headstart.data.split`
can rebuild a saved index without importing its builder: the data modules import each other one way.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from headstart.data.validate import DataSummary

__all__ = ["Sample", "DatasetIndex"]


@dataclass(frozen=True)
class Sample:
    """One image file and its class index (into ``DatasetIndex.classes``)."""

    path: Path
    label: int


@dataclass
class DatasetIndex:
    """Files and labels per split. ``splits`` always has ``'train'`` and ``'val'``, and ``'test'``
    when the dataset has a test split or ``test_fraction > 0``."""

    root: Path
    layout: str
    classes: list[str]
    splits: dict[str, list[Sample]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Files not used, with the reason (unreadable, truncated, outside the class folders...)."""
    too_small: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)
    """Images (kept) whose shorter side is below ``min_image_size``, with their size."""
    notes: list[str] = field(default_factory=list)
    """Decisions taken on the user's behalf (split fallbacks, classes missing from a split)."""
    seed: int | None = None
    """Seed of the split (``None`` when the splits all came with the dataset)."""
    median_short_side: int | None = None
    """Median shorter side (px) of the readable images, measured while checking them (the input
    size rule, :func:`headstart.data.transforms.input_size_for_data`); ``None`` when not measured."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_binary(self) -> bool:
        return self.num_classes == 2

    def class_counts(self, split: str = "train") -> dict[str, int]:
        """Images per class name in ``split`` (classes with no image included, as 0)."""
        counter = Counter(s.label for s in self.splits.get(split, []))
        return {name: counter.get(i, 0) for i, name in enumerate(self.classes)}

    def summary(self) -> DataSummary:
        return DataSummary(
            root=self.root,
            layout=self.layout,
            classes=list(self.classes),
            counts={split: self.class_counts(split) for split in self.splits},
            skipped=list(self.skipped),
            too_small=list(self.too_small),
            notes=list(self.notes),
            median_short_side=self.median_short_side,
        )

    def fingerprint(self) -> str:
        """SHA-256 over the sorted (split, relative path, size, mtime_ns, label) of every sample
        and the class names: changes when a file is added, removed, edited, relabelled or moved to
        another split. Cheap (one ``stat`` per file, no reading), for provenance and cache keys."""
        rows = []
        for split, samples in self.splits.items():
            for s in samples:
                try:
                    st = os.stat(s.path)
                    size, mtime = st.st_size, st.st_mtime_ns
                except OSError:
                    size, mtime = -1, -1
                try:
                    rel = s.path.relative_to(self.root).as_posix()
                except ValueError:
                    rel = s.path.as_posix()
                rows.append(f"{split}\t{rel}\t{size}\t{mtime}\t{s.label}")
        digest = hashlib.sha256()
        digest.update(("\n".join(self.classes) + "\n\n").encode())
        for row in sorted(rows):
            digest.update(row.encode() + b"\n")
        return digest.hexdigest()
