"""Read Ultralytics YOLO detection datasets.

``data.yaml`` (or ``dataset.yaml``) names the classes (``names``: a list, or ``{id: name}``) and the
image folders of each split (``train``, ``val``, optional ``test``): a folder, a list of folders, or
a ``.txt`` file listing images, relative to ``path`` (itself relative to the YAML's folder) or, when
``path`` is absent, to the YAML's folder. The labels of ``.../images/.../a.jpg`` are in
``.../labels/.../a.txt`` (the last ``images`` component of the path replaced by ``labels``), one
``class cx cy w h`` line per box, normalised to [0, 1]. An image without a label file, or with an
empty one, is a background image.

Paths are resolved as Ultralytics resolves them (``check_det_dataset`` and ``img2label_paths``),
including its fallback for Roboflow's ``train: ../train/images`` written beside the YAML.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from headstart._validation import did_you_mean
from headstart.data.decode import IMAGE_EXTENSIONS, is_image_file
from headstart.data.detection.annotation_files import load_yaml, read_lines
from headstart.data.detection.boxes import cxcywh_to_xyxy
from headstart.data.detection.parsed import ParsedBox, ParsedDataset, ParsedImage, relative_name
from headstart.data.detection.problems import Problem
from headstart.errors import DataError

__all__ = ["yolo_yaml", "read_yolo", "label_path", "YAML_NAMES"]

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
_SPLIT_KEYS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_NORMALISED_SLACK = 1e-6  # float noise of exporters writing 1.0000001


def yolo_yaml(root: Path) -> Path | None:
    """The dataset YAML of a YOLO dataset folder, else None."""
    return next((root / n for n in YAML_NAMES if (root / n).is_file()), None)


def label_path(image: Path) -> Path:
    """The label file of ``image``: its last ``images`` path component replaced by ``labels``,
    suffix ``.txt``; beside the image when no component is called ``images``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _names(doc: dict, yaml_path: Path) -> dict[int, str]:
    names = doc.get("names")
    example = "Add the class names, for example 'names: [cat, dog]' or 'names: {0: cat, 1: dog}'."
    if isinstance(names, list) and names:
        out = {i: str(n) for i, n in enumerate(names)}
    elif isinstance(names, dict) and names:
        out = {}
        for key, name in names.items():
            try:
                out[int(key)] = str(name)
            except (TypeError, ValueError):
                raise DataError(
                    f"The 'names' of {str(yaml_path)!r} map {key!r} to {name!r}, but the keys must be"
                    f" class ids (0, 1, ...). {example}"
                ) from None
    else:
        raise DataError(f"The YOLO dataset file {str(yaml_path)!r} has no class names ('names'). {example}")
    nc = doc.get("nc")
    if nc is not None and nc != len(out):
        raise DataError(
            f"The YOLO dataset file {str(yaml_path)!r} says nc: {nc!r} but lists {len(out)} names."
            " Make 'nc' the number of names, or delete it."
        )
    return dict(sorted(out.items()))


def _base(doc: dict, yaml_path: Path, notes: list[str]) -> Path:
    here = yaml_path.parent
    given = doc.get("path")
    if not given:
        return here
    base = Path(str(given)).expanduser()
    base = Path(os.path.normpath(base if base.is_absolute() else here / base))
    if base.is_dir():
        return base
    notes.append(
        f"The 'path' of {yaml_path.name} ({given!r}) does not exist here (the dataset was probably"
        f" made on another machine); the split folders are resolved against {str(here)!r} instead."
    )
    return here


def _entry_path(entry: str, base: Path) -> Path:
    path = Path(entry).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists() and entry.startswith("../"):
        fallback = base / entry[3:]  # Roboflow's "../train/images" beside data.yaml
        if fallback.exists():
            return fallback
    return path


def _listed_images(list_file: Path, base: Path) -> list[tuple[Path, str, str | None]]:
    out = []
    for number, line in enumerate(read_lines(list_file), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        if not p.is_absolute():
            p = next((c for c in (list_file.parent / p, base / p) if c.exists()), list_file.parent / p)
        out.append((p, str(list_file), f"line {number}"))
    return out


def _images_below(folder: Path) -> list[Path]:
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(current) / f for f in files if is_image_file(f)]
    return sorted(found)


def _split_images(key: str, value, base: Path, yaml_path: Path) -> tuple[list[tuple], list[Path]]:
    """(images as (path, source, where), image folders) of one split entry of the YAML."""
    entries = value if isinstance(value, list) else [value]
    images: list[tuple[Path, str, str | None]] = []
    folders: list[Path] = []
    for entry in entries:
        path = _entry_path(str(entry), base)
        if path.is_dir():
            folders.append(path)
            images += [(p, str(p), None) for p in _images_below(path)]
        elif path.is_file() and path.suffix.lower() == ".txt":
            images += _listed_images(path, base)
        elif path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append((path, str(yaml_path), None))
        else:
            parent = path.parent
            siblings = [p.name for p in parent.iterdir()] if parent.is_dir() else []
            raise DataError(
                f"The {key!r} entry of {str(yaml_path)!r} names {str(entry)!r}, but {str(path)!r} does not"
                f" exist.{did_you_mean(path.name, siblings)} Give a folder of images or a .txt list of"
                f" images, relative to {str(base)!r}."
            )
    return images, folders


def _parse_line(text: str, names: dict[int, str], yaml_name: str) -> tuple[tuple | None, str, str]:
    """``((class id, xyxy normalised), '', '')`` or ``(None, message, fix)``."""
    fields = text.split()
    if len(fields) != 5:
        if len(fields) >= 7 and len(fields) % 2 == 1:
            return None, f"has {len(fields)} fields: a segmentation polygon, not a box", (
                "Export the dataset in YOLO detection format: 'class cx cy w h' per line.")
        return None, f"has {len(fields)} field(s); a box line has 5 ('class cx cy w h')", (
            "Write 'class cx cy w h' (5 numbers) per box.")
    try:
        values = [float(v) for v in fields]
    except ValueError:
        bad = next(v for v in fields if not _is_float(v))
        return None, f"has {bad!r}, which is not a number", "Write 5 numbers: 'class cx cy w h'."
    cls, coords = values[0], values[1:]
    if not cls.is_integer():
        return None, f"has the class id {fields[0]!r}, which is not a whole number", (
            f"Use a class id from the names of {yaml_name} (0, 1, ...).")
    if int(cls) not in names:
        ids = ", ".join(str(i) for i in names)
        return None, f"has the class id {int(cls)}, which is not in the names of {yaml_name} (ids {ids})", (
            f"Fix the class id, or add the class to the names in {yaml_name}.")
    if not all(math.isfinite(v) and -_NORMALISED_SLACK <= v <= 1 + _NORMALISED_SLACK for v in coords):
        return None, f"has coordinates outside [0, 1] ({' '.join(fields[1:])})", (
            "YOLO coordinates are fractions of the image size: divide x and width by the image's"
            " width, y and height by its height.")
    cx, cy, w, h = (min(max(v, 0.0), 1.0) for v in coords)
    return (int(cls), cxcywh_to_xyxy(cx, cy, w, h)), "", ""


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_labels(
    image: ParsedImage, label_file: Path, names: dict[int, str], label_of: dict[int, int], problems: list[Problem],
    yaml_name: str,
) -> None:
    source = str(label_file)
    for number, line in enumerate(read_lines(label_file), start=1):
        if not line.strip():
            continue
        parsed, message, fix = _parse_line(line, names, yaml_name)
        if parsed is None:
            problems.append(Problem(source, f"line {number}", message, fix))
            continue
        cls, box = parsed
        image.boxes.append(ParsedBox(box, label_of[cls], False, source, f"line {number}", normalised=True))


def _orphan_labels(folders: list[Path], expected: set[Path], root: Path) -> list[Problem]:
    """Label files in the labels folders mirroring ``folders`` that belong to no image."""
    problems = []
    for folder in folders:
        labels = label_path(folder / "x.jpg").parent
        if labels == folder or not labels.is_dir():
            continue
        for txt in sorted(labels.rglob("*.txt")):
            if txt not in expected and txt.name != "classes.txt":
                problems.append(Problem(
                    str(txt), None, f"the label file has no image in {relative_name(folder, root)}/",
                    "Add the image, or delete the label file.", "warning", "skipped"))
    return problems


def read_yolo(yaml_path: Path) -> ParsedDataset:
    """Read the YOLO dataset described by ``yaml_path``."""
    doc = load_yaml(yaml_path)
    if not isinstance(doc, dict):
        raise DataError(
            f"The YOLO dataset file {str(yaml_path)!r} is not a mapping of keys (got {type(doc).__name__})."
            " It needs 'train', 'val' and 'names' keys."
        )
    names = _names(doc, yaml_path)
    label_of = {cid: i for i, cid in enumerate(names)}
    notes: list[str] = []
    if list(names) != list(range(len(names))):
        notes.append(f"The class ids of {yaml_path.name} are not 0..{len(names) - 1} ({', '.join(map(str, names))}).")
    base = _base(doc, yaml_path, notes)
    root = base  # the dataset's folder: 'path' when given (and present), else the YAML's folder
    if not doc.get("train"):
        raise DataError(
            f"The YOLO dataset file {str(yaml_path)!r} has no 'train' entry. Add 'train: images/train'"
            " (the folder of the training images)."
        )
    problems: list[Problem] = []
    images: list[ParsedImage] = []
    expected: set[Path] = set()
    folders: list[Path] = []
    for split, keys in _SPLIT_KEYS.items():
        key = next((k for k in keys if doc.get(k)), None)
        if key is None:
            continue
        paths, split_folders = _split_images(key, doc[key], base, yaml_path)
        folders += split_folders
        for path, source, where in paths:
            image = ParsedImage(path, split, [], None, source, where)
            label_file = label_path(path)
            expected.add(label_file)
            if label_file.is_file():
                _read_labels(image, label_file, names, label_of, problems, yaml_path.name)
            images.append(image)
    problems += _orphan_labels(list(dict.fromkeys(folders)), expected, root)
    return ParsedDataset(root, "yolo", list(names.values()), images, problems, notes)
