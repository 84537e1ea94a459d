"""Which detection layout a path holds, and the reader that reads it.

Checked in this order (the first that fits wins): a ``data.yaml`` / ``dataset.yaml`` (YOLO);
``annotations/instances_<split>.json`` (COCO); ``<split>/_annotations.coco.json`` (COCO export);
``Annotations/*.xml`` (Pascal VOC); a single COCO JSON (``annotations.json``, ``instances.json`` or
the one JSON in ``annotations/``). A path may also name the YAML or the JSON file itself.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from headstart._validation import did_you_mean
from headstart.data.decode import is_image_file
from headstart.data.detection.coco import EXPORT_JSON, coco_files, export_files, read_coco
from headstart.data.detection.parsed import POOL, ParsedDataset
from headstart.data.detection.voc import is_voc, read_voc
from headstart.data.detection.yolo import YAML_NAMES, read_yolo, yolo_yaml
from headstart.errors import DatasetNotFoundError

__all__ = ["detect_layout", "read_layout", "EXPECTED_LAYOUTS"]

EXPECTED_LAYOUTS = (
    "COCO: annotations/instances_train.json and instances_val.json, images in train/ and val/ (or"
    " images/train/ and images/val/), or one annotations.json beside images/",
    "COCO export (Roboflow): train/_annotations.coco.json and valid/_annotations.coco.json beside the images",
    "YOLO: data.yaml with 'train', 'val' and 'names', images in images/<split>/ and labels in labels/<split>/",
    "Pascal VOC: Annotations/*.xml, JPEGImages/ and optionally ImageSets/Main/train.txt and val.txt",
)
_KNOWN_NAMES = ("annotations", "Annotations", "JPEGImages", "ImageSets", "images", "labels", EXPORT_JSON,
                "annotations.json", "instances.json", *YAML_NAMES)


def _coco_root(json_path: Path) -> Path:
    parent = json_path.parent
    return parent.parent if parent.name == "annotations" else parent


def _layout_of(path: Path) -> tuple[str, Path, dict[str, Path] | Path] | None:
    """``(layout, root, source)``: source is the YAML (yolo), ``{split: json}`` (coco) or the root."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            return "yolo", path.parent, path
        if path.name == EXPORT_JSON:
            return "coco-export", path.parent, {POOL: path}
        if suffix == ".json":
            return "coco", _coco_root(path), {POOL: path}
        return None
    if not path.is_dir():
        return None
    yaml_path = yolo_yaml(path)
    if yaml_path is not None:
        return "yolo", path, yaml_path
    files = coco_files(path)
    if files is not None and POOL not in files:
        return "coco", path, files
    exported = export_files(path)
    if exported is not None:
        return "coco-export", path, exported
    if is_voc(path):
        return "voc", path, path
    if files is not None:
        return "coco", path, files
    return None


def detect_layout(path: str | Path) -> str | None:
    """``'coco'``, ``'coco-export'``, ``'yolo'`` or ``'voc'`` for what ``path`` holds, else None.
    Looks at file and folder names only (nothing is parsed)."""
    found = _layout_of(Path(path))
    return None if found is None else found[0]


def _expected() -> str:
    return "Expected one of these layouts:\n" + "\n".join(f"  - {e}" for e in EXPECTED_LAYOUTS)


def _hints(root: Path) -> list[str]:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    hints = []
    for p in entries:
        # Case-sensitive on purpose: COCO's annotations/ and VOC's Annotations/ are different layouts.
        close = difflib.get_close_matches(p.name, _KNOWN_NAMES, n=2, cutoff=0.8)
        if close and p.name not in _KNOWN_NAMES:
            hints.append(f"{p.name!r} is not a name headstart looks for; did you mean {' or '.join(map(repr, close))}?")
    for p in entries:
        if p.is_dir() and _layout_of(p) is not None:
            hints.append(f"Its subfolder {p.name!r} holds a {_layout_of(p)[0]} dataset: pass {str(p)!r}.")
    names = {p.name for p in entries}
    if {"images", "labels"} <= names:
        hints.append(
            "It has images/ and labels/ as YOLO datasets do, but no data.yaml: add one with 'train:"
            " images/train', 'val: images/val' and 'names: [...]'."
        )
    annotations = root / "annotations"
    if annotations.is_dir():
        jsons = sorted(p.name for p in annotations.glob("*.json"))
        if len(jsons) > 1:
            hints.append(
                f"annotations/ holds {len(jsons)} JSON files ({', '.join(jsons[:5])}) and none is named"
                " instances_<split>.json: rename them instances_train.json and instances_val.json."
            )
    class_dirs = [p for p in entries if p.is_dir() and any(is_image_file(f) for f in p.iterdir())]
    if class_dirs and not hints:
        hints.append(
            "Its subfolders hold images but no box annotations: that is a classification dataset"
            " (one folder per class), which 'headstart fit' trains on."
        )
    return hints


def _not_found(path: Path) -> DatasetNotFoundError:
    if not path.exists():
        parent = path.parent
        siblings = [p.name for p in parent.iterdir() if not p.name.startswith(".")] if parent.is_dir() else []
        return DatasetNotFoundError(
            f"The dataset path {str(path)!r} does not exist.{did_you_mean(path.name, siblings)} {_expected()}"
        )
    if path.is_file():
        return DatasetNotFoundError(
            f"The dataset path {str(path)!r} is a file but not a YOLO data.yaml or a COCO .json file."
            f" Pass the dataset folder, its data.yaml, or its COCO JSON file. {_expected()}"
        )
    if not any(p for p in path.iterdir() if not p.name.startswith(".")):
        return DatasetNotFoundError(f"The dataset folder {str(path)!r} is empty. {_expected()}")
    hints = "".join(f"\n{h}" for h in _hints(path))
    return DatasetNotFoundError(f"No detection dataset found in {str(path)!r}. {_expected()}{hints}")


def read_layout(path: str | Path) -> ParsedDataset:
    """Detect the layout of ``path`` and read it; raise
    :class:`~headstart.errors.DatasetNotFoundError` naming the path and the expected layouts (with
    hints at near misses) when nothing fits."""
    path = Path(path).expanduser()
    found = _layout_of(path)
    if found is None:
        raise _not_found(path)
    layout, root, source = found
    if layout == "yolo":
        return read_yolo(source)
    if layout == "voc":
        return read_voc(root)
    return read_coco(root, source, layout)
