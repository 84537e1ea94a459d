"""Find the images and their labels, whatever of the three common layouts the user has.

* ``class-folders``: ``root/<class>/**/<image>`` -- split automatically later;
* ``split-folders``: ``root/train/<class>/...``, ``root/val/<class>/...`` (also ``valid/`` or
  ``validation/``), optional ``root/test/<class>/...``;
* ``csv``: a ``.csv`` file with a ``path,label`` header and an optional ``split`` column.

Discovery only lists files (no decoding, no torch), in a sorted, deterministic order, so that the
same folder always gives the same dataset and the same split for a given seed. Hidden files and
folders and files without an image suffix are ignored.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from headstart._validation import did_you_mean
from headstart.data.decode import IMAGE_EXTENSIONS, is_image_file
from headstart.errors import DataError, DatasetNotFoundError

__all__ = ["Discovery", "discover", "SPLIT_NAMES", "SPLIT_ALIASES"]

SPLIT_NAMES = ("train", "val", "test")
"""The canonical split names, in order."""

SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
"""Folder names (and CSV ``split`` values) accepted for each split, case-insensitively."""

_IGNORED_DIRS = {"__macosx"}


@dataclass
class Discovery:
    """What was found on disk, before any reading, validation or splitting.

    ``files`` maps a split name to ``(image path, class name)`` pairs. Layouts without explicit
    splits (class folders, a CSV without a ``split`` column) put everything under ``"all"``.
    ``class_dirs`` lists, per split, every class folder found -- including empty ones, so that
    validation can name a class that has no images. ``ignored`` lists ``(file, reason)`` for image
    files that were deliberately not used (for example images lying next to the class folders).
    """

    root: Path
    layout: str
    files: dict[str, list[tuple[Path, str]]]
    class_dirs: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[tuple[Path, str]] = field(default_factory=list)
    source: Path | None = None
    """The CSV file for the ``csv`` layout, else ``None``."""

    @property
    def classes(self) -> list[str]:
        """Sorted union of class names over all splits (class folders and labels)."""
        names = {label for pairs in self.files.values() for _, label in pairs}
        for dirs in self.class_dirs.values():
            names.update(dirs)
        return sorted(names)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in _IGNORED_DIRS
    )


def _images_in(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursive), hidden files and folders skipped, sorted."""
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d.lower() not in _IGNORED_DIRS)
        found.extend(Path(current) / f for f in files if is_image_file(f))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _loose_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def _scan_class_folders(folder: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    pairs: list[tuple[Path, str]] = []
    names: list[str] = []
    for class_dir in _visible_dirs(folder):
        names.append(class_dir.name)
        pairs.extend((p, class_dir.name) for p in _images_in(class_dir))
    return pairs, names


def _split_folders(root: Path) -> dict[str, Path] | None:
    """``{'train': root/train, 'val': root/valid, ...}`` when ``root`` uses the split layout.

    The layout is recognised only when there is a ``train`` folder holding class subfolders and
    every visible subfolder is a split name. A class-folder dataset with a class called "train"
    (vehicles: bus, car, train) therefore stays a class-folder dataset.
    """
    subdirs = _visible_dirs(root)
    if not subdirs or any(d.name.lower() not in SPLIT_ALIASES for d in subdirs):
        return None
    by_split: dict[str, list[Path]] = {}
    for d in subdirs:
        by_split.setdefault(SPLIT_ALIASES[d.name.lower()], []).append(d)
    if "train" not in by_split or not any(_visible_dirs(d) for d in by_split["train"]):
        return None
    for split, dirs in by_split.items():
        if len(dirs) > 1:
            names = ", ".join(repr(d.name) for d in dirs)
            raise DataError(
                f"The dataset folder {str(root)!r} has several {split} folders ({names}). Keep one"
                f" of them (rename or move the others out of the dataset folder)."
            )
    return {split: dirs[0] for split, dirs in by_split.items()}


def _missing_path_error(path: Path) -> DatasetNotFoundError:
    hint = ""
    parent = path.parent
    if parent.is_dir():
        siblings = [p.name for p in parent.iterdir() if not p.name.startswith(".")]
        hint = did_you_mean(path.name, siblings)
    return DatasetNotFoundError(
        f"The dataset path {str(path)!r} does not exist.{hint} Pass a folder of class subfolders,"
        " a folder with train/ and val/ subfolders, or a CSV file with 'path,label' columns."
    )


def _discover_folder(root: Path) -> Discovery:
    splits = _split_folders(root)
    ignored = [(p, "image outside the class folders") for p in _loose_images(root)]
    if splits is not None:
        files: dict[str, list[tuple[Path, str]]] = {}
        class_dirs: dict[str, list[str]] = {}
        for split in SPLIT_NAMES:
            if split in splits:
                files[split], class_dirs[split] = _scan_class_folders(splits[split])
                ignored += [
                    (p, f"image outside the class folders of {splits[split].name}/")
                    for p in _loose_images(splits[split])
                ]
        return Discovery(root, "split-folders", files, class_dirs, ignored)
    pairs, names = _scan_class_folders(root)
    if not names and ignored:
        raise DataError(
            f"The dataset folder {str(root)!r} holds {len(ignored)} images but no class"
            " subfolders. Put the images of each class in a subfolder named after the class"
            " (for example cat/ and dog/), or pass a CSV file with 'path,label' columns."
        )
    return Discovery(root, "class-folders", {"all": pairs}, {"all": names}, ignored)


def _read_csv(csv_path: Path, csv_root: Path | None) -> Discovery:
    root = Path(csv_root) if csv_root is not None else csv_path.parent
    if csv_root is not None and not root.is_dir():
        raise DatasetNotFoundError(
            f"The data.csv_root folder {str(root)!r} does not exist. Pass the folder that the"
            f" relative paths in {csv_path.name!r} start from (default: the CSV's own folder)."
        )
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Cannot read the CSV file {str(csv_path)!r}: {exc}.") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DatasetNotFoundError(
            f"The CSV file {str(csv_path)!r} is empty. It needs a 'path,label' header and one row per image."
        )
    header = [h.strip().lower() for h in rows[0]]
    for needed in ("path", "label"):
        if needed not in header:
            hint = "".join(did_you_mean(h, [needed]) for h in header if h)
            raise DataError(
                f"The CSV file {str(csv_path)!r} has no {needed!r} column (columns found:"
                f" {', '.join(repr(h) for h in header)}).{hint} The first row must be a header"
                " with 'path' and 'label' columns, and optionally 'split' (train/val/test)."
            )
    i_path, i_label = header.index("path"), header.index("label")
    i_split = header.index("split") if "split" in header else None

    files: dict[str, list[tuple[Path, str]]] = {}
    ignored: list[tuple[Path, str]] = []
    seen: dict[Path, int] = {}
    duplicates: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row] + [""] * (len(header) - len(row))
        raw_path, label = cells[i_path], cells[i_label]
        if not raw_path or not label:
            what = "path" if not raw_path else "label"
            raise DataError(
                f"Row {line} of the CSV file {str(csv_path)!r} has an empty {what} ({row!r})."
                " Fill it in or delete the row."
            )
        split = "all"
        if i_split is not None:
            value = cells[i_split].lower()
            if value not in SPLIT_ALIASES:
                hint = did_you_mean(value, list(SPLIT_ALIASES)) if value else ""
                raise DataError(
                    f"Row {line} of the CSV file {str(csv_path)!r} has split {cells[i_split]!r};"
                    f" it must be one of 'train', 'val' or 'test'.{hint}"
                )
            split = SPLIT_ALIASES[value]
        path = Path(raw_path)
        path = path if path.is_absolute() else root / path
        if path in seen:
            duplicates.append(f"{raw_path!r} (rows {seen[path]} and {line})")
            continue
        seen[path] = line
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            ignored.append((path, f"not an image file suffix ({', '.join(sorted(IMAGE_EXTENSIONS))})"))
            continue
        files.setdefault(split, []).append((path, label))
    if duplicates:
        shown = "; ".join(duplicates[:5]) + (f"; and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
        raise DataError(
            f"The CSV file {str(csv_path)!r} lists {len(duplicates)} image(s) more than once:"
            f" {shown}. Each image must appear once (an image in two splits leaks test data into"
            " training)."
        )
    if not files and not ignored:
        raise DatasetNotFoundError(f"The CSV file {str(csv_path)!r} has a header but no rows. Add one row per image.")
    for split in files:
        files[split].sort(key=lambda pair: pair[0].as_posix())
    if i_split is not None:
        files = {s: files[s] for s in SPLIT_NAMES if s in files}
    return Discovery(root, "csv", files, {}, ignored, source=csv_path)


def discover(path: str | Path, csv_root: str | Path | None = None) -> Discovery:
    """List the images and labels under ``path`` and recognise its layout.

    Raises :class:`~headstart.errors.DatasetNotFoundError` when ``path`` does not exist and
    :class:`~headstart.errors.DataError` when it is neither a folder nor a ``.csv`` file, or when a
    CSV is malformed. Emptiness and class checks are left to :mod:`headstart.data.validate`.
    """
    if path is None:
        raise DatasetNotFoundError("No dataset given. Pass data=<folder or CSV file> (CLI: headstart fit <folder>).")
    path = Path(path).expanduser()
    if not path.exists():
        raise _missing_path_error(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(
                f"The dataset path {str(path)!r} is a {path.suffix or 'suffix-less'} file. Pass a"
                " folder of class subfolders, a folder with train/ and val/ subfolders, or a .csv"
                " file with 'path,label' columns."
            )
        return _read_csv(path, Path(csv_root).expanduser() if csv_root is not None else None)
    return _discover_folder(path)
