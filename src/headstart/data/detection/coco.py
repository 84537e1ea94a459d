"""Read COCO-format detection datasets.

Three arrangements of the same JSON format (``images``, ``annotations``, ``categories``):

* ``coco``: ``annotations/instances_{train,val,test}.json`` (also ``instances_train2017.json``),
  images in ``train/``, ``val/``, ``test/`` or ``images/{split}/`` (``file_name`` is resolved against
  those folders, then ``images/`` and the root);
* ``coco-export`` (Roboflow and similar): ``{split}/_annotations.coco.json`` beside the images, with
  split folders ``train``, ``valid`` or ``val``, ``test``;
* a single JSON (``annotations.json``, ``instances.json``, or the one ``*.json`` in
  ``annotations/``, as CVAT writes it) with images in ``images/`` or the root; split automatically.

COCO boxes are ``[x, y, width, height]`` with the top-left corner at ``(x, y)``: converted to
``(x1, y1, x2, y2)``. Classes are the category names in order of category id; ``iscrowd=1`` boxes
are kept with ``ignore=True``.
"""

from __future__ import annotations

import re
from pathlib import Path

from headstart.data.decode import is_image_file
from headstart.data.detection.annotation_files import load_json
from headstart.data.detection.boxes import xywh_to_xyxy
from headstart.data.detection.parsed import POOL, ParsedBox, ParsedDataset, ParsedImage, relative_name
from headstart.data.detection.problems import Problem
from headstart.data.discover import SPLIT_ALIASES
from headstart.errors import DataError

__all__ = ["coco_files", "export_files", "read_coco", "EXPORT_JSON", "SINGLE_JSON_NAMES"]

EXPORT_JSON = "_annotations.coco.json"
SINGLE_JSON_NAMES = ("annotations.json", "instances.json")
_INSTANCES = re.compile(r"^instances_([A-Za-z]+)(.*)\.json$")


def _one_per_split(found: dict[str, list[Path]], where: Path) -> dict[str, Path]:
    for split, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(repr(relative_name(p, where)) for p in paths)
            raise DataError(
                f"The dataset folder {str(where)!r} has several {split} annotation files ({names})."
                " Keep one of them (move the others out of the dataset folder)."
            )
    return {split: paths[0] for split, paths in found.items()}


def coco_files(root: Path) -> dict[str, Path] | None:
    """``{split: json}`` for the ``coco`` layout (``{'all': json}`` for a single JSON), else None."""
    folder = root / "annotations"
    if folder.is_dir():
        found: dict[str, list[Path]] = {}
        for p in sorted(folder.glob("instances_*.json")):
            m = _INSTANCES.match(p.name)
            if m and m.group(1).lower() in SPLIT_ALIASES:
                found.setdefault(SPLIT_ALIASES[m.group(1).lower()], []).append(p)
        if found:
            return _one_per_split(found, root)
    for name in SINGLE_JSON_NAMES:
        if (root / name).is_file():
            return {POOL: root / name}
    if folder.is_dir():
        jsons = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
        if len(jsons) == 1:
            return {POOL: jsons[0]}
    return None


def export_files(root: Path) -> dict[str, Path] | None:
    """``{split: {split}/_annotations.coco.json}`` for the export layout (``{'all': ...}`` when
    the JSON lies in the root itself), else None."""
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name.lower() in SPLIT_ALIASES and (sub / EXPORT_JSON).is_file():
            found.setdefault(SPLIT_ALIASES[sub.name.lower()], []).append(sub / EXPORT_JSON)
    if found:
        return _one_per_split(found, root)
    if (root / EXPORT_JSON).is_file():
        return {POOL: root / EXPORT_JSON}
    return None


def _image_dirs(root: Path, json_path: Path, split: str, layout: str) -> list[Path]:
    """Folders that ``file_name`` may be relative to, most specific first."""
    if layout == "coco-export":
        return [json_path.parent]
    names: list[str] = []
    m = _INSTANCES.match(json_path.name)
    if m:
        names.append(m.group(1) + m.group(2))  # instances_train2017.json -> train2017/
    if split != POOL:
        names += [alias for alias, canonical in SPLIT_ALIASES.items() if canonical == split]
    dirs = [base / n for n in dict.fromkeys(names) for base in (root, root / "images")]
    return dirs + [root / "images", root]


def _resolve(file_name: str, dirs: list[Path]) -> Path:
    candidates = [d / file_name for d in dirs]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _records(data, key: str, json_path: Path, required: bool = True) -> list:
    value = data.get(key) if isinstance(data, dict) else None
    if value is None and not required and isinstance(data, dict):
        return []
    if not isinstance(value, list):
        got = "nothing" if value is None else type(value).__name__
        raise DataError(
            f"The COCO file {str(json_path)!r} has no {key!r} list (got {got}). A COCO detection"
            " file holds 'images', 'annotations' and 'categories' lists; export the dataset again"
            " in COCO format."
        )
    return value


def _categories(loaded: dict[str, tuple[Path, dict]]) -> dict[int, str]:
    """Category id -> name over every file; the same id must have the same name everywhere."""
    names: dict[int, tuple[str, Path]] = {}
    for json_path, data in loaded.values():
        for i, cat in enumerate(_records(data, "categories", json_path)):
            cid = cat.get("id") if isinstance(cat, dict) else None
            name = cat.get("name") if isinstance(cat, dict) else None
            if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str):
                raise DataError(
                    f"The COCO file {str(json_path)!r} has a malformed category at categories[{i}]"
                    f" ({cat!r}): each category needs an integer 'id' and a 'name'."
                )
            if cid in names and names[cid][0] != name:
                raise DataError(
                    f"Category id {cid} is {names[cid][0]!r} in {str(names[cid][1])!r} but {name!r} in"
                    f" {str(json_path)!r}. Every split must use the same categories: export the"
                    " splits together."
                )
            names[cid] = (name, json_path)
    if not names:
        files = ", ".join(repr(str(p)) for p, _ in loaded.values())
        raise DataError(f"The COCO file(s) {files} list no categories. Add the class names to 'categories'.")
    return {cid: names[cid][0] for cid in sorted(names)}


def _number_list(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def _read_file(
    json_path: Path, data: dict, split: str, dirs: list[Path], label_of: dict[int, int], root: Path,
    problems: list[Problem],
) -> list[ParsedImage]:
    source = str(json_path)
    images: dict[object, ParsedImage] = {}
    for i, entry in enumerate(_records(data, "images", json_path)):
        image_id = entry.get("id") if isinstance(entry, dict) else None
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        where = f"image {image_id}" if image_id is not None else f"images[{i}]"
        if image_id is None or not isinstance(file_name, str) or not file_name:
            problems.append(Problem(source, where, "the image entry has no 'id' or no 'file_name'",
                                    "Give every image an 'id' and a 'file_name'.", "error", "skipped"))
            continue
        if image_id in images:
            problems.append(Problem(source, where, f"the image id {image_id!r} is used twice",
                                    "Give every image its own id; the second entry was left out.", "error", "skipped"))
            continue
        w, h = entry.get("width"), entry.get("height")
        declared = (w, h) if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (w, h)) else None
        images[image_id] = ParsedImage(_resolve(file_name, dirs), split, [], declared, source, where)
    known = ", ".join(str(c) for c in label_of)
    for i, ann in enumerate(_records(data, "annotations", json_path, required=False)):
        if not isinstance(ann, dict):
            problems.append(Problem(source, f"annotations[{i}]", "the annotation is not an object",
                                    "Remove it or export the file again."))
            continue
        where = f"annotation {ann['id']}" if "id" in ann else f"annotations[{i}]"
        iid = ann.get("image_id")
        image = images.get(iid) if isinstance(iid, (int, str)) else None
        if image is None:
            problems.append(Problem(
                source, where, f"refers to image id {ann.get('image_id')!r}, which 'images' does not list",
                "Add the image to 'images' or delete the annotation."))
            continue
        cid = ann.get("category_id")
        if not isinstance(cid, int) or isinstance(cid, bool) or cid not in label_of:
            problems.append(Problem(
                source, where, f"has category_id {cid!r}, which is not in 'categories' (ids {known})",
                "Use one of the listed category ids, or add the category to 'categories'."))
            continue
        bbox = ann.get("bbox")
        if not _number_list(bbox):
            problems.append(Problem(
                source, where, f"has no valid bbox (expected [x, y, width, height] numbers, got {bbox!r})",
                "Give the annotation a bbox, or delete it."))
            continue
        ignore = bool(ann.get("iscrowd", 0))
        image.boxes.append(ParsedBox(xywh_to_xyxy(*bbox), label_of[cid], ignore, source, where))
    return list(images.values())


def _unlisted_note(images: list[ParsedImage], json_path: Path, root: Path) -> str | None:
    """A note on image files beside the listed ones that the JSON does not mention."""
    listed = {im.path for im in images}
    folders = {p.parent for p in listed if p.is_file()}
    unlisted = [p for d in sorted(folders) for p in sorted(d.iterdir()) if is_image_file(p) and p not in listed]
    if not unlisted:
        return None
    where = ", ".join(relative_name(d, root) + "/" for d in sorted(folders))
    return (
        f"{len(unlisted)} image file(s) in {where} are not listed in {relative_name(json_path, root)}"
        f" (for example {unlisted[0].name!r}); they are not used. List them in 'images' without"
        " annotations to use them as background images."
    )


def read_coco(root: Path, files: dict[str, Path], layout: str = "coco") -> ParsedDataset:
    """Read the COCO JSON file of each split (``files`` from :func:`coco_files` or
    :func:`export_files`); images without annotations are kept as background images."""
    loaded = {split: (path, load_json(path)) for split, path in files.items()}
    categories = _categories(loaded)
    label_of = {cid: i for i, cid in enumerate(categories)}
    problems: list[Problem] = []
    notes: list[str] = []
    images: list[ParsedImage] = []
    for split, (json_path, data) in loaded.items():
        dirs = _image_dirs(root, json_path, split, layout)
        found = _read_file(json_path, data, split, dirs, label_of, root, problems)
        images += found
        note = _unlisted_note(found, json_path, root)
        if note:
            notes.append(note)
    used = {b.label for im in images for b in im.boxes}
    for cid, name in categories.items():
        if label_of[cid] not in used:
            hint = ""
            if layout == "coco-export" and label_of[cid] == 0:
                hint = (" (Roboflow exports list the dataset's super-category as the first category;"
                        " it never has boxes)")
            notes.append(
                f"The category {name!r} (id {cid}) has no boxes{hint}; it is kept as a class, which"
                " the model can never learn to predict. Remove it from 'categories' to drop it."
            )
    return ParsedDataset(root, layout, list(categories.values()), images, problems, notes)
