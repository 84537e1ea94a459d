"""Stratified, seeded train/val/test splits, and their ``split.json`` record.

A split is part of an experiment: two runs are comparable only if they trained and validated on the
same images. Splits are therefore a pure function of (file list, labels, fractions, seed), and
:func:`save_split` writes the result next to a run so that :func:`load_split` can reuse it exactly,
even after the folder gained new images or the code's splitting rule changed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

from headstart.data.samples import DatasetIndex, Sample
from headstart.errors import DataError, DatasetNotFoundError

__all__ = ["stratified_split", "save_split", "load_split", "SPLIT_FORMAT_VERSION"]

SPLIT_FORMAT_VERSION = 1


def _carve(
    positions: list[int],
    labels: Sequence[int],
    fraction: float,
    total: int,
    seed: int,
    split: str,
    class_names: Sequence[str] | None,
    notes: list[str],
) -> tuple[list[int], list[int]]:
    """Take about ``fraction * total`` of ``positions`` out, stratified; return (kept, taken)."""
    from sklearn.model_selection import train_test_split

    def name(label: int) -> str:
        return repr(class_names[label]) if class_names is not None else str(label)

    counts = Counter(labels[p] for p in positions)
    # A class needs two images to give one away and keep one for training.
    too_small = sorted(c for c, n in counts.items() if n < 2)
    eligible = [p for p in positions if counts[labels[p]] >= 2]
    held = [p for p in positions if counts[labels[p]] < 2]
    if too_small:
        listed = ", ".join(name(c) for c in too_small)
        notes.append(
            f"{len(too_small)} class(es) have a single image left for the {split} split ({listed});"
            f" they are used for training only, so the {split} split cannot measure them."
        )
    if not eligible:
        return positions, []
    n_classes = len({labels[p] for p in eligible})
    wanted = max(1, round(fraction * total))
    try:
        # scikit-learn needs at least one image per class on each side of a stratified split.
        if wanted > len(eligible) - n_classes or wanted < n_classes:
            raise ValueError("too few images to stratify")
        kept, taken = train_test_split(
            eligible,
            test_size=wanted,
            stratify=[labels[p] for p in eligible],
            random_state=seed % (2**32),
            shuffle=True,
        )
    except ValueError:
        # Too few images per class for scikit-learn's stratified split (it needs at least one
        # image per class on each side). Take round(fraction * count) from each class instead,
        # at least one and never its last image, so every class is represented on both sides.
        import numpy as np

        rng = np.random.RandomState(seed % (2**32))
        kept, taken = [], []
        by_class: dict[int, list[int]] = {}
        for p in eligible:
            by_class.setdefault(labels[p], []).append(p)
        for label in sorted(by_class):
            members = list(by_class[label])
            rng.shuffle(members)
            k = min(max(1, round(fraction * len(members))), len(members) - 1)
            taken += members[:k]
            kept += members[k:]
        notes.append(
            f"The dataset is too small for an exactly stratified {split} split of"
            f" {fraction:.0%}: took at least one image of each class instead ({len(taken)} images"
            f" rather than {wanted})."
        )
    absent = sorted({labels[p] for p in eligible} - {labels[p] for p in taken})
    if absent:
        listed = ", ".join(name(c) for c in absent)
        notes.append(
            f"{len(absent)} class(es) are too small to get any image in a {fraction:.0%} {split}"
            f" split ({listed}); the {split} split cannot measure them."
        )
    return sorted(list(kept) + held), sorted(taken)


def stratified_split(
    labels: Sequence[int],
    fractions: Mapping[str, float],
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> tuple[dict[str, list[int]], list[str]]:
    """Split positions ``0..len(labels)-1`` into ``'train'`` plus the splits named in ``fractions``.

    ``fractions`` maps a split name to its share of the *whole* input, e.g. ``{'val': 0.15,
    'test': 0.15}``; splits with fraction 0 are left out. Splits are carved in the order ``test``,
    then ``val``, each with :func:`sklearn.model_selection.train_test_split` (``stratify=labels``,
    ``random_state=seed``), so class proportions are preserved and the result depends only on the
    inputs. Classes too small to stratify keep at least one training image; every fallback taken is
    described in the returned notes (shown in the data summary), never applied silently.

    Returns ``(positions per split, notes)``; positions are sorted ascending.
    """
    total = len(labels)
    order = sorted(fractions, key=lambda s: (s != "test", s))
    remaining = list(range(total))
    result: dict[str, list[int]] = {}
    notes: list[str] = []
    for split in order:
        fraction = float(fractions[split])
        if fraction <= 0:
            continue
        remaining, taken = _carve(remaining, labels, fraction, total, seed, split, class_names, notes)
        result[split] = taken
    result = {"train": remaining, **{s: result[s] for s in sorted(result, key=lambda s: s != "val")}}
    return result, notes


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()  # a CSV may point outside its root: keep the absolute path


def save_split(index: DatasetIndex, path: str | Path) -> Path:
    """Write ``index``'s split to ``path`` (``split.json``), atomically.

    Paths are stored relative to the dataset root, so a dataset folder that moved can be used with
    ``load_split(path, root=new_location)``. Also stored: labels, class names, layout, seed and the
    index's fingerprint (for provenance).
    """
    path = Path(path)
    root = Path(index.root)
    record = {
        "version": SPLIT_FORMAT_VERSION,
        "layout": index.layout,
        "root": root.as_posix(),
        "seed": index.seed,
        "classes": list(index.classes),
        "fingerprint": index.fingerprint(),
        "splits": {
            split: [[_relative(s.path, root), s.label] for s in samples] for split, samples in index.splits.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_split(path: str | Path, root: str | Path | None = None) -> DatasetIndex:
    """Rebuild the :class:`~headstart.data.index.DatasetIndex` saved by :func:`save_split`.

    ``root`` overrides the stored dataset root (the dataset moved). Raises
    :class:`~headstart.errors.DatasetNotFoundError` naming the missing images when files listed in
    the split no longer exist, and :class:`~headstart.errors.DataError` for a malformed file. The
    images are not re-validated here; :func:`~headstart.data.index.load_dataset` does that.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"The split file {str(path)!r} does not exist. Pass the split.json of an earlier run,"
            " or leave it out to split the dataset anew."
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        classes = [str(c) for c in record["classes"]]
        stored_root = Path(record["root"])
        raw_splits = record["splits"]
        layout = str(record.get("layout", "unknown"))
        seed = record.get("seed")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"The split file {str(path)!r} is not a valid split.json ({type(exc).__name__}: {exc})."
            " It should be written by headstart.data.save_split."
        ) from None
    base = Path(root) if root is not None else stored_root
    splits: dict[str, list[Sample]] = {}
    missing: list[Path] = []
    for split, rows in raw_splits.items():
        samples = []
        for rel, label in rows:
            if not (isinstance(label, int) and 0 <= label < len(classes)):
                raise DataError(
                    f"The split file {str(path)!r} gives {rel!r} the label {label!r}, but there are"
                    f" {len(classes)} classes. The file is corrupt; split the dataset anew."
                )
            file = Path(rel) if Path(rel).is_absolute() else base / rel
            if not file.is_file():
                missing.append(file)
            samples.append(Sample(file, label))
        splits[split] = samples
    if missing:
        shown = ", ".join(repr(str(m)) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetNotFoundError(
            f"{len(missing)} image(s) listed in the split file {str(path)!r} no longer exist under"
            f" {str(base)!r}: {shown}{more}. Restore them, pass the dataset's new location as the"
            " root, or split the dataset anew (leave out the split file)."
        )
    for needed in ("train", "val"):
        splits.setdefault(needed, [])
    return DatasetIndex(root=base, layout=layout, classes=classes, splits=splits, skipped=[], too_small=[], seed=seed)
