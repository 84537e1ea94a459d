"""The dataset as the rest of headstart sees it: files, labels and splits, checked and frozen.

:func:`load_dataset` is the entry point: discover the layout, check the structure, decode every
image once to find unreadable ones, split what is not split yet, and compare classes between
splits. The resulting :class:`DatasetIndex` holds paths only (no pixels, no torch), so it is cheap
to build, to save as ``split.json`` and to fingerprint for provenance.
"""

from __future__ import annotations

from pathlib import Path

from headstart.data.discover import SPLIT_NAMES, discover
from headstart.data.samples import DatasetIndex, Sample
from headstart.data.split import load_split, stratified_split
from headstart.data.validate import (
    check_images,
    check_split_classes,
    check_structure,
    format_file_list,
    median_short_side,
)
from headstart.errors import DataError, DatasetNotFoundError

__all__ = ["Sample", "DatasetIndex", "load_dataset"]


def _drop_unreadable(
    splits: dict[str, list[Sample]], cfg, progress: bool, sizes: list[tuple[int, int]] | None = None
) -> tuple[dict[str, list[Sample]], list[tuple[Path, str]], list[tuple[Path, tuple[int, int]]]]:
    paths = [s.path for samples in splits.values() for s in samples]
    unreadable, too_small = check_images(paths, min_image_size=cfg.min_image_size, strict=cfg.strict, progress=progress,
                                         sizes=sizes)
    bad = {p for p, _ in unreadable}
    kept = {split: [s for s in samples if s.path not in bad] for split, samples in splits.items()}
    return kept, unreadable, too_small


def _raise_if_all_missing(unreadable: list[tuple[Path, str]], total: int, where: str) -> None:
    if total and len(unreadable) == total and all("does not exist" in r for _, r in unreadable):
        raise DatasetNotFoundError(
            f"None of the {total} images listed in {where!r} exists, for example:\n"
            f"{format_file_list(unreadable, 3)}\nRelative paths are resolved against the CSV's"
            " folder; set data.csv_root to the folder they start from."
        )


def _check_classes_left(splits: dict[str, list[Sample]], classes: list[str], skipped) -> None:
    present = {s.label for samples in splits.values() for s in samples}
    lost = [c for i, c in enumerate(classes) if i not in present]
    if lost:
        raise DataError(
            f"Every image of {len(lost)} class(es) is unreadable: {', '.join(repr(c) for c in lost)}."
            f" Unreadable files:\n{format_file_list(skipped)}\nRe-export the images or remove the"
            " class."
        )


def _from_split_file(cfg, split_file: Path, progress: bool) -> DatasetIndex:
    index = load_split(split_file, root=None if _stored_root_exists(split_file) else _cfg_root(cfg))
    sizes: list[tuple[int, int]] = []
    splits, unreadable, too_small = _drop_unreadable(index.splits, cfg, progress, sizes)
    _check_classes_left(splits, index.classes, unreadable)
    index.splits, index.skipped, index.too_small = splits, unreadable, too_small
    index.median_short_side = median_short_side(sizes)
    index.notes.append(f"Split reused from {split_file}.")
    return index


def _stored_root_exists(split_file: Path) -> bool:
    import json

    try:
        return Path(json.loads(Path(split_file).read_text(encoding="utf-8"))["root"]).is_dir()
    except (OSError, ValueError, KeyError, TypeError):
        return True  # let load_split report the malformed file


def _cfg_root(cfg) -> Path | None:
    if cfg.path is None:
        return None
    path = Path(cfg.path)
    if path.suffix.lower() == ".csv":
        return Path(cfg.csv_root) if cfg.csv_root is not None else path.parent
    return path


def load_dataset(cfg, seed: int = 0, split_file: str | Path | None = None, *, progress: bool = False) -> DatasetIndex:
    """Discover, check and split the dataset described by ``cfg`` (a :class:`~headstart.config.DataConfig`).

    Splits that the dataset provides (split folders, a CSV ``split`` column) are used as they are;
    missing ones are carved out of train with :func:`~headstart.data.split.stratified_split`:
    ``val`` always (``cfg.val_fraction``), ``test`` when ``cfg.test_fraction > 0``. With
    ``split_file`` (a ``split.json`` written by :func:`~headstart.data.split.save_split`), that
    split is reused exactly instead. Unreadable images are skipped and listed (fatal with
    ``cfg.strict``); the dataset folder is only read, never written.
    """
    if split_file is not None:
        return _from_split_file(cfg, Path(split_file), progress)

    found = discover(cfg.path, cfg.csv_root)
    check_structure(found)
    classes = found.classes
    label_of = {name: i for i, name in enumerate(classes)}
    raw = {split: [Sample(path, label_of[name]) for path, name in pairs] for split, pairs in found.files.items()}
    if found.layout == "csv":
        paths = [s.path for v in raw.values() for s in v]
        missing = [(p, "does not exist") for p in paths if not p.is_file()]
        _raise_if_all_missing(missing, len(paths), str(found.source))
    sizes: list[tuple[int, int]] = []
    raw, unreadable, too_small = _drop_unreadable(raw, cfg, progress, sizes)
    _check_classes_left(raw, classes, unreadable)

    provided = [s for s in SPLIT_NAMES if s in raw]
    notes: list[str] = []
    if "all" in raw:
        pool, fractions = raw["all"], {"val": cfg.val_fraction, "test": cfg.test_fraction}
        splits: dict[str, list[Sample]] = {}
    else:
        if "train" not in raw or not raw["train"]:
            raise DataError(
                f"The dataset {str(found.source or found.root)!r} has no training images"
                f" (splits found: {', '.join(provided) or 'none'}). Add a train split."
            )
        pool = raw["train"]
        splits = {s: raw[s] for s in provided if s != "train"}
        fractions = {}
        if "val" not in raw:
            fractions["val"] = cfg.val_fraction
            notes.append(f"No val split in the dataset: {cfg.val_fraction:.0%} of train held out.")
        if "test" not in raw and cfg.test_fraction > 0:
            fractions["test"] = cfg.test_fraction
            notes.append(f"No test split in the dataset: {cfg.test_fraction:.0%} of train held out.")
    carved_seed = seed if fractions else None
    if fractions:
        positions, split_notes = stratified_split([s.label for s in pool], fractions, seed=seed, class_names=classes)
        notes += split_notes
        for split, where in positions.items():
            splits[split] = [pool[i] for i in where]
    else:
        splits["train"] = pool
    splits = {s: splits[s] for s in SPLIT_NAMES if s in splits}
    if not splits.get("val"):
        raise DataError(
            f"Could not hold out a validation split from {str(found.source or found.root)!r}: every"
            " class has fewer than 2 images. Add images, or provide a val/ folder (or a CSV split"
            " column)."
        )
    counts = {
        split: {c: sum(1 for s in samples if s.label == i) for i, c in enumerate(classes)}
        for split, samples in splits.items()
    }
    notes += check_split_classes(counts, provided=provided)
    skipped = list(found.ignored) + unreadable
    return DatasetIndex(
        root=found.root,
        layout=found.layout,
        classes=classes,
        splits=splits,
        skipped=skipped,
        too_small=too_small,
        notes=notes,
        seed=carved_seed,
        median_short_side=median_short_side(sizes),
    )
