"""The detection dataset as the rest of headstart sees it: :func:`load_detection_dataset` finds the
layout, reads the annotations, checks every image and box, and splits what is not split yet.

The dataset folder is only ever read. What is repaired or left out is listed in
``DetectionIndex.problems`` (fatal with ``strict=True``), what was decided in ``notes``.
"""

from __future__ import annotations

from pathlib import Path

from headstart._validation import check_number
from headstart.data.detection.assemble import assemble, check_image_files
from headstart.data.detection.layout import read_layout
from headstart.data.detection.parsed import POOL
from headstart.data.detection.problems import Problem, raise_if_strict
from headstart.data.detection.samples import BoxSample, DetectionIndex
from headstart.data.detection.split_file import load_detection_split
from headstart.data.detection.stratify import stratified_box_split
from headstart.errors import ConfigError, DataError

__all__ = ["load_detection_dataset"]

_SPLITS = ("train", "val", "test")


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    check_number("val_fraction", val_fraction, low=0, high=1, closed="neither")
    check_number("test_fraction", test_fraction, low=0, high=1, closed="left")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction must be below 1 so that images are left for training."
            f" Got {val_fraction} + {test_fraction}."
        )


def _label_set(s: BoxSample) -> set[int]:
    return {lab for lab, ign in zip(s.labels, s.ignore) if not ign}


def _from_split_file(split_file: Path, path: str | Path | None, strict: bool, progress: bool) -> DetectionIndex:
    import json

    try:
        stored = Path(json.loads(split_file.read_text(encoding="utf-8"))["root"])
        root = None if stored.is_dir() or path is None else Path(path)
    except (OSError, ValueError, KeyError, TypeError):
        root = None  # load_detection_split reports the malformed file
    index = load_detection_split(split_file, root=root)
    samples = [s for v in index.splits.values() for s in v]
    results = check_image_files([s.path for s in samples], progress=progress)
    bad = {s.path: reason for s, (size, reason) in zip(samples, results) if size is None}
    problems = [
        Problem(str(p), None, f"cannot be read: {reason}", "Re-export or delete the file.", "error", "skipped")
        for p, reason in bad.items()
    ]
    raise_if_strict(problems, strict, str(index.root))
    index.splits = {split: [s for s in v if s.path not in bad] for split, v in index.splits.items()}
    index.problems += problems
    index.notes.append(f"Split reused from {split_file}.")
    return index


def _split(splits: dict[str, list[BoxSample]], classes: list[str], val_fraction: float, test_fraction: float,
           seed: int, where: str) -> tuple[dict[str, list[BoxSample]], list[str], int | None]:
    notes: list[str] = []
    if POOL in splits:
        pool, out = splits[POOL], {}
        fractions = {"val": val_fraction, "test": test_fraction}
    else:
        if not splits.get("train"):
            found = ", ".join(s for s in _SPLITS if splits.get(s)) or "none"
            raise DataError(
                f"The dataset {where!r} has no usable training images (splits found: {found})."
                " Add a train split, or check the problems listed above."
            )
        pool, out, fractions = splits["train"], {s: splits[s] for s in _SPLITS[1:] if s in splits}, {}
        if "val" not in splits:
            fractions["val"] = val_fraction
            notes.append(f"No val split in the dataset: {val_fraction:.0%} of train held out.")
        if "test" not in splits and test_fraction > 0:
            fractions["test"] = test_fraction
            notes.append(f"No test split in the dataset: {test_fraction:.0%} of train held out.")
    if not fractions:
        out["train"] = pool
        return {s: out[s] for s in _SPLITS if s in out}, notes, None
    positions, split_notes = stratified_box_split([_label_set(s) for s in pool], fractions, seed, classes)
    notes += split_notes
    for split, idx in positions.items():
        out[split] = [pool[i] for i in idx]
    return {s: out[s] for s in _SPLITS if s in out}, notes, seed


def _class_notes(splits: dict[str, list[BoxSample]], classes: list[str]) -> list[str]:
    present = {s: set().union(*(_label_set(x) for x in v)) if v else set() for s, v in splits.items()}
    notes = []
    for split in ("val", "test"):
        extra = sorted(present.get(split, set()) - present.get("train", set()))
        if extra:
            names = ", ".join(repr(classes[c]) for c in extra)
            notes.append(
                f"The {split} split has boxes of {len(extra)} class(es) that train has none of ({names});"
                " the model cannot learn them, so their AP will be 0."
            )
    return notes


def load_detection_dataset(
    path: str | Path,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    strict: bool = False,
    seed: int = 0,
    split_file: str | Path | None = None,
    progress: bool = False,
) -> DetectionIndex:
    """Read, check and split the detection dataset at ``path`` (a folder, a data.yaml or a COCO JSON).

    Layouts: COCO (``annotations/instances_<split>.json``, or one JSON), COCO export
    (``<split>/_annotations.coco.json``), YOLO (``data.yaml``) and Pascal VOC (``Annotations/``).
    Splits the dataset gives are used as they are; a missing val (and test, when ``test_fraction >
    0``) is held out of train, and a dataset without splits is split into train/val/test, with
    every class in every split where the images allow it (seeded by ``seed``). With
    ``split_file`` (a split.json from :func:`save_detection_split`) that split, boxes included,
    is reused exactly instead, and ``path`` is only used when the stored root has moved.

    Boxes and images with problems are repaired or left out and listed in ``problems``; with
    ``strict=True`` any problem raises a :class:`~headstart.errors.DataError` listing them all.
    The dataset folder is never written to.
    """
    _check_fractions(val_fraction, test_fraction)
    if split_file is not None:
        return _from_split_file(Path(split_file), path, strict, progress)
    parsed = read_layout(path)
    assembled = assemble(parsed, progress=progress)
    problems, notes = assembled.problems, assembled.notes
    where = str(parsed.root)
    raise_if_strict(problems, strict, where)
    samples = [s for v in assembled.splits.values() for s in v]
    if not samples:
        raise DataError(
            f"The dataset {where!r} ({parsed.layout}) has no usable images: {len(problems)} problem(s),"
            " for example:\n" + "\n".join(f"  {p.format()}" for p in problems[:5])
            + "\nFix the paths in the annotation files or restore the images."
        )
    if not any(s.boxes for s in samples):
        raise DataError(
            f"The dataset {where!r} ({parsed.layout}) has {len(samples)} images but not one usable box."
            " A detector needs boxes to learn from: check the label files (and the problems listed"
            " with strict off)."
        )
    splits, split_notes, used_seed = _split(assembled.splits, parsed.classes, val_fraction, test_fraction, seed,
                                            where)
    notes += split_notes
    if not splits.get("val"):
        raise DataError(
            f"Could not hold out a validation split from {where!r}: it has too few images"
            f" ({len(samples)}). Add images, or give a val split."
        )
    notes += _class_notes(splits, parsed.classes)
    return DetectionIndex(root=parsed.root, layout=parsed.layout, classes=list(parsed.classes), splits=splits,
                          problems=problems, notes=notes, seed=used_seed)
