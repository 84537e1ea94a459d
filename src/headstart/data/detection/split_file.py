"""``split.json`` for detection: the images of each split *with their checked boxes*, so a run can be
resumed, evaluated and reported from its folder alone, even after the annotation files changed.

Paths are stored relative to the dataset root; boxes as JSON numbers, which round-trip Python
floats exactly. The problems and notes of the load are kept too, for the run's report.
"""

from __future__ import annotations

import json
from pathlib import Path

from headstart._io import atomic_write_json
from headstart.data.detection.parsed import relative_name
from headstart.data.detection.problems import Problem
from headstart.data.detection.samples import BoxSample, DetectionIndex
from headstart.errors import DataError, DatasetNotFoundError

__all__ = ["save_detection_split", "load_detection_split", "DETECTION_SPLIT_VERSION", "SPLIT_TASK"]

DETECTION_SPLIT_VERSION = 1
SPLIT_TASK = "detect"


def _sample_record(s: BoxSample, root: Path) -> dict:
    return {
        "path": relative_name(s.path, root),
        "image_id": s.image_id,
        "width": s.width,
        "height": s.height,
        "boxes": [list(b) for b in s.boxes],
        "labels": list(s.labels),
        "ignore": list(s.ignore),
    }


def save_detection_split(index: DetectionIndex, path: str | Path) -> Path:
    """Write ``index`` (splits, boxes, classes, seed, fingerprint, problems, notes) to ``path``,
    atomically: a crash leaves the old file or the new one, never half of one."""
    root = Path(index.root)
    record = {
        "version": DETECTION_SPLIT_VERSION,
        "task": SPLIT_TASK,
        "layout": index.layout,
        "root": root.as_posix(),
        "seed": index.seed,
        "classes": list(index.classes),
        "fingerprint": index.fingerprint(),
        "splits": {split: [_sample_record(s, root) for s in samples] for split, samples in index.splits.items()},
        "problems": [p.to_dict() for p in index.problems],
        "notes": list(index.notes),
    }
    return atomic_write_json(path, record)


def _invalid(path: Path, detail: str) -> DataError:
    return DataError(
        f"The split file {str(path)!r} is not a valid detection split.json ({detail}). It should be"
        " written by headstart.data.detection.save_detection_split; split the dataset anew (leave"
        " out the split file)."
    )


def _sample(row: dict, base: Path, n_classes: int, path: Path) -> BoxSample:
    rel = row["path"]
    boxes = tuple(tuple(float(v) for v in b) for b in row["boxes"])
    labels = tuple(int(v) for v in row["labels"])
    ignore = tuple(bool(v) for v in row["ignore"])
    if any(len(b) != 4 for b in boxes) or not (len(boxes) == len(labels) == len(ignore)):
        raise _invalid(path, f"the boxes, labels and ignore flags of {rel!r} do not match")
    if any(not 0 <= label < n_classes for label in labels):
        raise _invalid(path, f"{rel!r} has a label outside the {n_classes} classes")
    file = Path(rel) if Path(rel).is_absolute() else base / rel
    return BoxSample(file, int(row["width"]), int(row["height"]), boxes, labels, ignore, int(row["image_id"]))


def load_detection_split(path: str | Path, root: str | Path | None = None) -> DetectionIndex:
    """Rebuild the :class:`DetectionIndex` saved by :func:`save_detection_split`.

    ``root`` overrides the stored dataset root (the dataset moved). Raises
    :class:`~headstart.errors.DatasetNotFoundError` naming the images that no longer exist, and
    :class:`~headstart.errors.DataError` for a malformed file or a classification split.json.
    Images are not decoded here; ``load_detection_dataset(..., split_file=...)`` does that.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"The split file {str(path)!r} does not exist. Pass the split.json of an earlier"
            " detection run, or leave it out to split the dataset anew."
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _invalid(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(record, dict) or record.get("task") != SPLIT_TASK:
        raise _invalid(path, "it has no \"task\": \"detect\"; it may be a classification split")
    try:
        classes = [str(c) for c in record["classes"]]
        base = Path(root) if root is not None else Path(record["root"])
        splits = {
            split: [_sample(row, base, len(classes), path) for row in rows]
            for split, rows in record["splits"].items()
        }
        problems = [Problem.from_dict(p) for p in record.get("problems", [])]
        notes = [str(n) for n in record.get("notes", [])]
        layout, seed = str(record.get("layout", "unknown")), record.get("seed")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _invalid(path, f"{type(exc).__name__}: {exc}") from None
    missing = [s.path for samples in splits.values() for s in samples if not s.path.is_file()]
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
    return DetectionIndex(root=base, layout=layout, classes=classes, splits=splits, problems=problems,
                          notes=notes, seed=seed)
