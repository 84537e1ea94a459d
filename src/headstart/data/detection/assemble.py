"""From what the annotation files say to checked :class:`BoxSample` records: the checks every
layout shares.

Each image is opened once (the classification checks of :mod:`headstart.data.decode`: a full decode
finds truncated files, and the size is the upright one, EXIF orientation applied). Then each box is
judged against that real size: clipped when partly outside, dropped when empty, outside the image or
a duplicate. Every repair is a :class:`~headstart.data.detection.problems.Problem` naming the
annotation file and the line or annotation id.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from headstart.data.decode import check_image
from headstart.data.detection.boxes import duplicate_flags, fit_box
from headstart.data.detection.parsed import SPLIT_ORDER, ParsedDataset, ParsedImage, relative_name
from headstart.data.detection.problems import Problem
from headstart.data.detection.samples import BoxSample

__all__ = ["Assembled", "assemble", "check_image_files"]


@dataclass
class Assembled:
    """Checked images per split (``'all'`` for images without a split), with problems and notes."""

    splits: dict[str, list[BoxSample]]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_image_files(
    paths: list[Path], *, progress: bool = False, num_threads: int | None = None
) -> list[tuple[tuple[int, int] | None, str | None]]:
    """:func:`~headstart.data.decode.check_image` on every path, on a thread pool (Pillow releases
    the GIL while decoding): ``((width, height), None)`` or ``(None, reason)`` per path."""
    threads = num_threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        mapped = pool.map(check_image, paths)
        if progress and paths:
            from rich.progress import track

            mapped = track(mapped, total=len(paths), description="Checking images")
        return list(mapped)


def _fmt(box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _split_rank(split: str) -> int:
    return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)


def _same_image_splits(images: list[ParsedImage], notes: list[str]) -> list[ParsedImage]:
    """Drop a split that lists exactly the images of an earlier one (``val: images/train`` in a
    YOLO data.yaml): it is not a held-out split, and the auto split will carve a real one."""
    by_split: dict[str, set[Path]] = {}
    for im in images:
        by_split.setdefault(im.split, set()).add(im.path)
    dropped = set()
    order = sorted(by_split, key=_split_rank)
    for i, later in enumerate(order):
        for earlier in order[:i]:
            if earlier not in dropped and by_split[later] == by_split[earlier]:
                dropped.add(later)
                notes.append(
                    f"The {later} split lists exactly the images of the {earlier} split, so it cannot"
                    f" measure anything: it is ignored, and a {later} split is held out of train instead."
                )
                break
    return [im for im in images if im.split not in dropped]


def _merge_repeats(images: list[ParsedImage], root: Path, problems: list[Problem]) -> list[ParsedImage]:
    """One entry per image file: repeats within a split are merged (their boxes pooled), repeats in
    a later split are dropped (an image in two splits leaks training data into the evaluation)."""
    first: dict[Path, ParsedImage] = {}
    out = []
    for im in sorted(images, key=lambda im: _split_rank(im.split)):
        seen = first.get(im.path)
        if seen is None:
            first[im.path] = im
            out.append(im)
            continue
        name = relative_name(im.path, root)
        source, where = im.listed_at or (im.source, im.where)
        if seen.split == im.split:
            seen.boxes.extend(im.boxes)
            first_at = (seen.listed_at or (seen.source, seen.where))[1] or seen.source
            problems.append(Problem(
                source, where, f"the image {name!r} is listed again (first at {first_at})",
                "List each image once; its boxes were pooled.", "warning", "kept"))
        else:
            problems.append(Problem(
                source, where, f"the image {name!r} of the {im.split} split is also in the {seen.split} split",
                f"Keep each image in one split; it was left out of {im.split} (an image in two splits"
                " makes the evaluation score images the model trained on).", "error", "skipped"))
    return out


def _size_problem(im: ParsedImage, real: tuple[int, int], root: Path) -> Problem:
    (dw, dh), (w, h) = im.declared_size, real
    fix = f"Correct the width and height in {Path(im.source).name}; its boxes were checked against the real size."
    severity = "warning"
    if (dw, dh) == (h, w):
        # Turned by 90 degrees: almost always an EXIF orientation tag the annotation tool ignored,
        # so the boxes were drawn on the sideways picture and do not fit the upright one.
        severity = "error"
        fix = (
            "The stated size is the image's size turned by 90 degrees: the file probably has an EXIF"
            " orientation tag that the annotation tool ignored, so its boxes may be drawn on the"
            " sideways picture. headstart reads images upright: annotate (or export) the upright"
            " image. Its boxes were checked against the upright size."
        )
    return Problem(
        im.source, im.where,
        f"states the size {dw}x{dh} for {relative_name(im.path, root)!r}, but the image is {w}x{h}",
        fix, severity, "kept")


_DROP_REASON = {
    "not-finite": ("has a coordinate that is not a finite number", "Write numbers for every coordinate."),
    "empty": ("has zero or negative width or height", "Redraw the box or delete it."),
    "outside": ("lies entirely outside the image", "Redraw the box on the image or delete it."),
}


def _check_boxes(
    im: ParsedImage, size: tuple[int, int], root: Path, classes: list[str], problems: list[Problem]
) -> tuple[list, list[int], list[bool]]:
    w, h = size
    name = relative_name(im.path, root)
    kept, labels, ignore, origin = [], [], [], []
    for pb in im.boxes:
        raw = pb.box
        if pb.normalised:
            raw = (raw[0] * w, raw[1] * h, raw[2] * w, raw[3] * h)
        box, verdict = fit_box(raw, w, h)
        what = f"the {classes[pb.label]!r} box {_fmt(raw)} of {name!r} ({w}x{h})"
        if box is None:
            message, fix = _DROP_REASON[verdict]
            problems.append(Problem(pb.source, pb.where, f"{what} {message}", fix))
            continue
        if verdict == "clipped":
            problems.append(Problem(
                pb.source, pb.where, f"{what} extends beyond the image; clipped to {_fmt(box)}",
                "Redraw the box inside the image.", "warning", "clipped"))
        kept.append(box)
        labels.append(pb.label)
        ignore.append(pb.ignore)
        origin.append(pb)
    duplicates = duplicate_flags(kept, labels)
    out = ([], [], [])
    for i, dup in enumerate(duplicates):
        if dup is not None:
            pb, first = origin[i], origin[dup]
            problems.append(Problem(
                pb.source, pb.where,
                f"the {classes[pb.label]!r} box {_fmt(kept[i])} of {name!r} repeats the box at"
                f" {first.where or 'the same place'} (IoU > 0.95)",
                "Delete one of the two boxes: an object drawn twice trains the model to predict it twice.",
                "warning", "dropped"))
            continue
        out[0].append(tuple(kept[i]))
        out[1].append(labels[i])
        out[2].append(ignore[i])
    return out[0], out[1], out[2]


def assemble(parsed: ParsedDataset, *, progress: bool = False, num_threads: int | None = None) -> Assembled:
    """Check every image and box of ``parsed``; return the :class:`BoxSample` lists per split.

    ``image_id`` is assigned in the order of the images' paths relative to the root, across
    splits, so it does not depend on the split or the seed.
    """
    root = parsed.root
    problems = list(parsed.problems)
    notes = list(parsed.notes)
    images = _merge_repeats(_same_image_splits(parsed.images, notes), root, problems)

    present = []
    for im in images:
        if im.path.is_file():
            present.append(im)
            continue
        n = len(im.boxes)
        problems.append(Problem(
            im.source, im.where,
            f"the image file {relative_name(im.path, root)!r} does not exist"
            + (f"; its {n} box(es) were dropped" if n else ""),
            "Restore the image, or delete its entry from the annotations.", "error", "dropped"))

    results = check_image_files([im.path for im in present], progress=progress, num_threads=num_threads)
    records: list[tuple[str, ParsedImage, tuple[int, int], tuple]] = []
    for im, (size, reason) in zip(present, results):
        if size is None:
            problems.append(Problem(
                str(im.path), None, f"cannot be read: {reason}",
                "Re-export or delete the file; its boxes were not used.", "error", "skipped"))
            continue
        if im.declared_size is not None and tuple(im.declared_size) != tuple(size):
            problems.append(_size_problem(im, size, root))
        boxes, labels, ignore = _check_boxes(im, size, root, parsed.classes, problems)
        records.append((relative_name(im.path, root), im, size, (boxes, labels, ignore)))

    splits: dict[str, list[BoxSample]] = {}
    for image_id, (_, im, (w, h), (boxes, labels, ignore)) in enumerate(sorted(records, key=lambda r: r[0])):
        sample = BoxSample(im.path, int(w), int(h), tuple(boxes), tuple(labels), tuple(ignore), image_id)
        splits.setdefault(im.split, []).append(sample)
    for split in splits:
        splits[split].sort(key=lambda s: s.image_id)
    return Assembled(splits=splits, problems=problems, notes=notes)
