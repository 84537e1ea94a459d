"""Read Pascal VOC detection datasets.

``Annotations/<id>.xml`` (one per image), ``JPEGImages/`` and, optionally,
``ImageSets/Main/{train,val,trainval,test}.txt`` (one image id per line) for the splits; without
``ImageSets`` every annotated image is split automatically. Classes are the object names found in
the XML files, sorted, unless ``labels.txt`` or ``classes.txt`` in the root lists them (then other
names are reported and their boxes dropped). ``<difficult>1</difficult>`` boxes are kept with
``ignore=True``, as the VOC evaluation does.
"""

from __future__ import annotations

from pathlib import Path

from headstart.data.decode import is_image_file
from headstart.data.detection.annotation_files import load_xml, read_lines
from headstart.data.detection.parsed import POOL, ParsedBox, ParsedDataset, ParsedImage, relative_name
from headstart.data.detection.problems import Problem
from headstart.errors import DataError

__all__ = ["is_voc", "read_voc", "CLASS_LIST_NAMES"]

CLASS_LIST_NAMES = ("labels.txt", "classes.txt")
_SPLIT_FILES = ("train", "val", "trainval", "test")
_SKIPPED_NAMES = {"__ignore__", "_background_", "__background__", "background"}  # labelme2voc, mmdet


def is_voc(root: Path) -> bool:
    folder = root / "Annotations"
    return folder.is_dir() and any(folder.glob("*.xml"))


def _class_list(root: Path) -> tuple[list[str] | None, Path | None]:
    for name in CLASS_LIST_NAMES:
        path = root / name
        if path.is_file():
            names = [n.strip() for n in read_lines(path) if n.strip() and n.strip() not in _SKIPPED_NAMES]
            if names:
                return names, path
    return None, None


def _split_ids(root: Path, notes: list[str]) -> dict[str, list[tuple[str, str, str]]] | None:
    """``{split: [(id, list file, 'line n')]}`` from ImageSets/Main, or None without it."""
    folder = root / "ImageSets" / "Main"
    found = {s: folder / f"{s}.txt" for s in _SPLIT_FILES if (folder / f"{s}.txt").is_file()}
    if not found:
        return None
    chosen: dict[str, str] = {}
    if "train" in found:
        chosen["train"] = "train"
        if "val" in found:
            chosen["val"] = "val"
    elif "trainval" in found:
        chosen["train"] = "trainval"
        notes.append("ImageSets/Main has trainval.txt but no train.txt/val.txt: val is held out of trainval.")
    elif "val" in found:
        chosen["val"] = "val"
    if "test" in found:
        chosen["test"] = "test"
    out = {}
    for split, name in chosen.items():
        rows = []
        for number, line in enumerate(read_lines(found[name]), start=1):
            fields = line.split()
            if fields:
                rows.append((fields[0], str(found[name]), f"line {number}"))
        out[split] = rows
    return out


def _text(element, tag: str) -> str | None:
    node = element.find(tag)
    return None if node is None or node.text is None else node.text.strip()


def _image_path(xml_path: Path, filename: str | None, images: Path, by_stem: dict[str, Path]) -> Path:
    if filename:
        candidate = images / filename
        if candidate.is_file():
            return candidate
    found = by_stem.get(xml_path.stem) or (by_stem.get(Path(filename).stem) if filename else None)
    if found is not None:
        return found
    return images / (filename or f"{xml_path.stem}.jpg")


def _declared_size(root_el) -> tuple[int, int] | None:
    size = root_el.find("size")
    if size is None:
        return None
    try:
        w, h = int(float(_text(size, "width") or 0)), int(float(_text(size, "height") or 0))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def _objects(xml_path: Path, root_el) -> list[tuple[str | None, tuple | None, bool, str]]:
    """``(name, xyxy 0-based or None, difficult, 'object n')`` per ``<object>``."""
    out = []
    for n, obj in enumerate(root_el.findall("object"), start=1):
        name = _text(obj, "name")
        difficult = (_text(obj, "difficult") or "0") not in ("0", "false", "False", "")
        box_el = obj.find("bndbox")
        box = None
        if box_el is not None:
            try:
                x1, y1, x2, y2 = (float(_text(box_el, t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax"))
                # VOC pixel coordinates are 1-based and inclusive: a box (1, 1, W, H) covers the whole
                # image. In continuous coordinates that is (0, 0, W, H), hence x1 - 1 and y1 - 1 with
                # x2, y2 unchanged, as the VOC devkit's conventions imply and detectron2's VOC reader
                # (data/datasets/pascal_voc.py) converts them.
                box = (x1 - 1.0, y1 - 1.0, x2, y2)
            except ValueError:
                box = None
        out.append((name, box, difficult, f"object {n}"))
    return out


def read_voc(root: Path) -> ParsedDataset:
    """Read the VOC dataset in ``root``; images without objects are background images."""
    notes: list[str] = []
    problems: list[Problem] = []
    images_dir = root / "JPEGImages"
    if not images_dir.is_dir():
        from headstart._validation import did_you_mean

        subdirs = [p.name for p in root.iterdir() if p.is_dir()]
        raise DataError(
            f"The VOC dataset {str(root)!r} has Annotations/ but no JPEGImages/ folder.{did_you_mean('JPEGImages', subdirs)}"
            " Put the images in JPEGImages/."
        )
    by_stem: dict[str, Path] = {}
    for p in sorted(images_dir.iterdir()):
        if is_image_file(p):
            by_stem.setdefault(p.stem, p)
    xml_files = sorted((root / "Annotations").glob("*.xml"))
    split_rows = _split_ids(root, notes)
    if split_rows is None:
        wanted = [(p.stem, POOL, str(p), None) for p in xml_files]
    else:
        wanted = [(i, split, src, where) for split, rows in split_rows.items() for i, src, where in rows]
        listed = {i for i, *_ in wanted}
        unlisted = [p for p in xml_files if p.stem not in listed]
        if unlisted:
            notes.append(
                f"{len(unlisted)} annotation file(s) are in no ImageSets/Main list (for example"
                f" {unlisted[0].name!r}); they are not used."
            )
    parsed = []
    for image_id, split, src, where in wanted:
        xml_path = root / "Annotations" / f"{image_id}.xml"
        if not xml_path.is_file():
            problems.append(Problem(src, where, f"lists the image {image_id!r}, which has no Annotations/{image_id}.xml",
                                    "Add the annotation file, or remove the id from the list.", "error", "skipped"))
            continue
        el = load_xml(xml_path)
        path = _image_path(xml_path, _text(el, "filename"), images_dir, by_stem)
        listed_at = (src, where) if where is not None else None
        parsed.append((xml_path, split, path, _declared_size(el), _objects(xml_path, el), listed_at))

    given, class_file = _class_list(root)
    classes = given if given is not None else sorted({n for *_, objs, _ in parsed for n, *_ in objs if n})
    label_of = {name: i for i, name in enumerate(classes)}
    if not classes:
        raise DataError(
            f"No object in the VOC annotations of {str(root)!r} has a <name>: there are no classes."
            " Add objects with a <name> and a <bndbox> to the XML files."
        )
    images = []
    for xml_path, split, path, declared, objects, listed_at in parsed:
        source = str(xml_path)
        image = ParsedImage(path, split, [], declared, source, None, listed_at)
        for name, box, difficult, where in objects:
            if not name:
                problems.append(Problem(source, where, "has no <name> (its class)", "Give the object a <name>."))
            elif name not in label_of:
                listed = relative_name(class_file, root) if class_file else "the class list"
                problems.append(Problem(
                    source, where, f"has the class {name!r}, which {listed} does not list",
                    f"Fix the name or add it to {listed}."))
            elif box is None:
                problems.append(Problem(
                    source, where, "has no valid <bndbox> (xmin, ymin, xmax, ymax numbers)",
                    "Give the object a <bndbox> with four numbers, or delete it."))
            else:
                image.boxes.append(ParsedBox(box, label_of[name], difficult, source, where))
        images.append(image)
    return ParsedDataset(root, "voc", list(classes), images, problems, notes)
