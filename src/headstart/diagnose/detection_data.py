"""Detection data checks: what loading the annotations repaired or left out, coordinate-format
mistakes read from the box statistics, box counts per class, and objects too small for the
detector's input size, strides and anchors.

Each ``check_*`` function takes measurements (problems, arrays of boxes, counts) and returns a list
of findings, so each is tested on its own; :mod:`headstart.diagnose.detection_doctor` measures.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = [
    "problem_kind",
    "check_annotation_problems",
    "check_coordinate_format",
    "check_box_balance",
    "anchor_best_iou",
    "check_small_objects",
]

# The data layer (data/detection/assemble.py) words each problem it finds; a kind is recognised by
# the phrase it uses (tests/diagnose/test_detection_data.py builds the problems with the real loader,
# so a rewording there fails here).
_KINDS = (
    ("outside", "extends beyond the image"),
    ("outside", "lies entirely outside the image"),
    ("degenerate", "zero or negative width or height"),
    ("degenerate", "not a finite number"),
    ("duplicate-box", "repeats the box"),
    ("unreadable-image", "cannot be read"),
    ("missing-image", "does not exist"),
    ("split-repeat", "is also in the"),
    ("yolo-coordinates-not-fractions", "has coordinates outside [0, 1]"),
)
_SHOWN = 5


def problem_kind(message: str) -> str:
    """``outside``, ``degenerate``, ``duplicate-box``, ``unreadable-image``, ``missing-image``,
    ``split-repeat`` or ``other`` for a problem message of the detection data layer."""
    return next((kind for kind, phrase in _KINDS if phrase in message), "other")


_ANNOTATION_FIX = {
    "outside": "Redraw these boxes inside the image (headstart clipped or dropped them): check that the annotation"
    " tool saw the same, upright image (EXIF orientation) at the same size.",
    "degenerate": "Redraw or delete these boxes (headstart dropped them); if many have x2 < x1, the file probably holds"
    " [x, y, w, h] where [x1, y1, x2, y2] is expected (see coordinate-format).",
    "duplicate-box": "Delete the second copy of each box (headstart dropped it): an object drawn twice trains the"
    " detector to predict it twice.",
    "unreadable-image": "Re-export or delete these image files (headstart left them out).",
    "missing-image": "Restore the images or delete their entries from the annotations.",
    "yolo-coordinates-not-fractions": "YOLO labels hold fractions of the image: divide x_center and width by the image"
    " width, y_center and height by its height (lines in pixels were dropped).",
    "split-repeat": "Keep each image in one split (headstart left the copy out of the later split).",
    "other": "Fix the lines named above in the annotation files.",
}


def _location(problem, root: Path | None) -> str:
    """The problem's file relative to the dataset root (when below it), and its line or id."""
    path = Path(problem.path)
    if root is not None and path.is_relative_to(root):
        path = path.relative_to(root)
    return f"{path.as_posix()}, {problem.where}" if problem.where else path.as_posix()


def check_annotation_problems(
    problems: Sequence, n_boxes: int, *, root: Path | None = None, high: float = 0.05, medium: float = 0.005
) -> list[Finding]:
    """One finding per kind of problem the loader repaired or left out (``problems``: the
    :class:`~headstart.data.detection.problems.Problem` list of the index), severity from the share
    of the ``n_boxes`` kept boxes they amount to; evidence: the file, line or annotation id and box."""
    by_kind: dict[str, list] = {}
    for p in problems:
        by_kind.setdefault(problem_kind(p.message), []).append(p)
    out = []
    for kind, group in by_kind.items():
        share = len(group) / max(n_boxes + len(group), 1)
        severity = "high" if share >= high else ("medium" if share >= medium else "low")
        if kind in ("missing-image", "split-repeat", "other") and severity == "high":
            severity = "medium"
        actions = Counter(p.action for p in group)
        shown = "; ".join(f"{_location(p, root)}: {p.message}" for p in group[:_SHOWN])
        out.append(
            Finding(
                f"annotations-{kind}",
                severity,
                f"{len(group)} {kind.replace('-', ' ')} problem(s) ({', '.join(f'{n} {a}' for a, n in actions.items())};"
                f" {share:.1%} of the boxes) when reading the annotations, e.g. {shown}.",
                _ANNOTATION_FIX[kind],
                {"count": len(group), "share": share, "problems": [p.to_dict() for p in group]},
            )
        )
    return out


def check_coordinate_format(
    raw: np.ndarray, sizes: np.ndarray, normalised: np.ndarray, where: Sequence[str], *, share: float = 0.2
) -> list[Finding]:
    """Coordinate-format mistakes, from the boxes exactly as the files state them.

    ``raw``: (N, 4) boxes as read, ``(x1, y1, x2, y2)`` in pixels, or in fractions of the image
    where ``normalised`` (YOLO); ``sizes``: (N, 2) the images' widths and heights; ``where``: the
    file and line of each box. Looks for:

    * [x, y, w, h] read as [x1, y1, x2, y2]: many boxes with x2 < x1 or y2 < y1, while reading them
      as x, y, w, h puts nearly all inside the image;
    * [x1, y1, x2, y2] read as [x, y, w, h] (COCO's format): many boxes cross the right or bottom
      edge and almost none the left or top one;
    * fractions read as pixels: most boxes within 1.5 px of the origin on images far larger.

    (Pixels in YOLO labels never get this far: the YOLO reader drops lines with coordinates outside
    [0, 1], and :func:`check_annotation_problems` reports them.)
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 4)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    normalised = np.asarray(normalised, dtype=bool).reshape(-1)
    n = len(raw)
    if n == 0:
        return []
    out = []
    finite = np.isfinite(raw).all(1)

    pix = ~normalised & finite
    m = int(pix.sum())
    if m == 0:
        return out
    r, s = raw[pix], sizes[pix]
    w = [where[i] for i in np.flatnonzero(pix)]

    def ev(mask: np.ndarray) -> str:
        idx = np.flatnonzero(mask)[:3]
        return "; ".join(
            f"{w[i]}: [{', '.join(f'{v:g}' for v in r[i])}] on a {s[i, 0]:.0f}x{s[i, 1]:.0f} image" for i in idx
        )

    tiny = (r[:, 2] <= 1.5) & (r[:, 3] <= 1.5) & (s.min(1) >= 16)
    if tiny.sum() >= 0.5 * m:
        out.append(
            Finding(
                "coordinate-format-fractions-as-pixels",
                "high",
                f"{tiny.sum()} of {m} boxes lie within 1.5 px of the image's top-left corner on images of"
                f" {np.median(s[:, 0]):.0f}x{np.median(s[:, 1]):.0f} px: they are fractions of the image read as pixels,"
                f" e.g. {ev(tiny)}.",
                "Multiply the coordinates by the image width (x) and height (y) in the annotation files (COCO and VOC"
                " want pixels), or write the dataset as YOLO labels, which are fractions.",
                {"count": int(tiny.sum()), "of": m},
            )
        )
        return out
    inverted = (r[:, 2] <= r[:, 0]) | (r[:, 3] <= r[:, 1])
    as_xywh_inside = (
        (r[:, 0] >= 0)
        & (r[:, 1] >= 0)
        & (r[:, 0] + r[:, 2] <= s[:, 0] + 1)
        & (r[:, 1] + r[:, 3] <= s[:, 1] + 1)
        & (r[:, 2] > 0)
        & (r[:, 3] > 0)
    )
    if inverted.sum() >= 0.5 * share * m and as_xywh_inside.mean() >= 0.9:
        out.append(
            Finding(
                "coordinate-format-xywh-as-xyxy",
                "high",
                f"{inverted.sum()} of {m} boxes have x2 < x1 or y2 < y1 (dropped as empty), while reading every box as"
                f" [x, y, width, height] puts {as_xywh_inside.mean():.0%} of them inside the image: the files hold"
                f" [x, y, w, h] where [x1, y1, x2, y2] is expected, e.g. {ev(inverted)}.",
                "Convert the boxes to corners (x2 = x + w, y2 = y + h) in the annotation files (VOC's xmax/ymax are"
                " corners), or write them as COCO, whose bbox is [x, y, w, h].",
                {"count": int(inverted.sum()), "of": m, "inside_as_xywh": float(as_xywh_inside.mean())},
            )
        )
        return out
    far = (r[:, 2] > s[:, 0] + 1) | (r[:, 3] > s[:, 1] + 1)
    near = (r[:, 0] < -1) | (r[:, 1] < -1)
    # as stored x, y, w, h the 'width' is r[2] - r[0]: read as a corner it should lie right of x
    as_xyxy_ok = ((r[:, 2] - r[:, 0]) > r[:, 0]) & ((r[:, 3] - r[:, 1]) > r[:, 1])
    if far.sum() >= share * m and near.sum() <= 0.02 * m:
        telltale = as_xyxy_ok[far].mean() >= 0.9
        out.append(
            Finding(
                "coordinate-format-xyxy-as-xywh" if telltale else "boxes-past-right-bottom-edge",
                "high" if telltale else "medium",
                f"{far.sum()} of {m} boxes ({far.mean():.0%}) cross the right or bottom edge of the image and {near.sum()}"
                " the left or top one"
                + (
                    ": the width and height read are the corners x2, y2 (every such 'width'"
                    " exceeds its x), so the file holds [x1, y1, x2, y2] where [x, y, w, h] is expected"
                    if telltale
                    else ": their sizes look too large"
                )
                + f", e.g. {ev(far)}.",
                "Convert the boxes to [x, y, w, h] (w = x2 - x1, h = y2 - y1) in the COCO file."
                if telltale
                else "Check the widths and heights in the annotation files against the images (scaling, a resized export).",
                {"count": int(far.sum()), "of": m},
            )
        )
    return out


def check_box_balance(
    box_counts: Mapping[str, int], *, few: int = 10, ratio_high: float = 10.0, ratio_medium: float = 3.0
) -> list[Finding]:
    """Imbalance counted in training boxes (largest / smallest class) and classes with too few boxes."""
    out = []
    nonzero = {c: n for c, n in box_counts.items() if n > 0}
    if len(nonzero) >= 2:
        big, small = max(nonzero, key=nonzero.get), min(nonzero, key=nonzero.get)
        ratio = nonzero[big] / nonzero[small]
        if ratio >= ratio_medium:
            out.append(
                Finding(
                    "box-class-imbalance",
                    "high" if ratio >= ratio_high else "medium",
                    f"The class {big!r} has {nonzero[big]} training boxes, {ratio:.1f}x the {nonzero[small]} of {small!r}:"
                    " the detector sees the rare classes seldom and their AP lags.",
                    "Annotate more boxes of the rare classes (images where they appear); read per-class AP in metrics.json"
                    " rather than mAP alone.",
                    {"counts": dict(box_counts), "ratio": ratio},
                )
            )
    scarce = {c: n for c, n in box_counts.items() if n < few}
    if scarce:
        out.append(
            Finding(
                "classes-with-few-boxes",
                "high" if any(n < 3 for n in scarce.values()) else "medium",
                f"{len(scarce)} class(es) have fewer than {few} training boxes: "
                + ", ".join(f"{c!r}: {n}" for c, n in sorted(scarce.items(), key=lambda kv: kv[1])[:10])
                + ".",
                "Annotate at least 20-50 boxes per class, or merge these classes into a related one.",
                {"classes": scarce},
            )
        )
    return out


def anchor_best_iou(wh: np.ndarray, sizes: Sequence[Sequence[float]], ratios: Sequence[float]) -> np.ndarray:
    """For each box (``wh``: (N, 2) widths and heights at the input size), the IoU of its best anchor
    placed on the same centre: torchvision's AnchorGenerator makes the anchors, torchvision.ops.box_iou
    compares them (the same test as the detectors' matchers, bar the grid offset)."""
    import torch
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import box_iou

    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if len(wh) == 0:
        return np.zeros(0)
    gen = AnchorGenerator(tuple(tuple(float(v) for v in level) for level in sizes), (tuple(ratios),) * len(sizes))
    anchors = torch.cat(gen.cell_anchors).double()  # zero-centred (x1, y1, x2, y2)
    half = torch.from_numpy(wh) / 2
    boxes = torch.cat([-half, half], dim=1)
    return box_iou(boxes, anchors).max(dim=1).values.numpy()


def check_small_objects(
    wh: np.ndarray,
    where: Sequence[str],
    *,
    input_size: int,
    strides: Sequence[int],
    detector: str,
    best_iou: np.ndarray | None = None,
    match_iou: float = 0.5,
    high: float = 0.3,
    medium: float = 0.1,
) -> list[Finding]:
    """Training boxes too small for the detector: the shorter side at the input size below the finest
    stride (``strides[0]``: the box spans less than one cell of the finest level), and, for
    anchor-based detectors (``best_iou`` given), boxes whose best anchor has IoU < ``match_iou`` (no
    positive anchor: the head never learns them)."""
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    n = len(wh)
    if n == 0:
        return []
    out = []
    stride = int(strides[0])
    below = wh.min(1) < stride
    frac = float(below.mean())
    if frac >= medium / 2:
        idx = np.flatnonzero(below)[:_SHOWN]
        out.append(
            Finding(
                "objects-below-finest-stride",
                "high" if frac >= high else ("medium" if frac >= medium else "low"),
                f"{below.sum()} of {n} training boxes ({frac:.0%}) have their shorter side below {stride} px, the finest"
                f" stride of the {detector} detector, at input size {input_size} (median box"
                f" {np.median(wh[:, 0]):.0f}x{np.median(wh[:, 1]):.0f} px), e.g. "
                + "; ".join(f"{where[i]} ({wh[i, 0]:.1f}x{wh[i, 1]:.1f} px)" for i in idx)
                + ".",
                f"Train at a larger input size (`--image-size {min(1280, 2 * input_size)}`), tile large images into"
                " crops, or use a backbone level with a finer stride (detect out_indices from stride 4).",
                {"count": int(below.sum()), "share": frac, "stride": stride, "input_size": input_size},
            )
        )
    if best_iou is not None and len(best_iou) == n:
        unmatched = np.asarray(best_iou) < match_iou
        share = float(unmatched.mean())
        if share >= medium / 2:
            idx = np.flatnonzero(unmatched)[:_SHOWN]
            out.append(
                Finding(
                    "boxes-without-anchor",
                    "high" if share >= high else ("medium" if share >= medium else "low"),
                    f"{unmatched.sum()} of {n} training boxes ({share:.0%}) have no anchor of the {detector} detector at"
                    f" IoU >= {match_iou} (input size {input_size}), so they give the head no positive example, e.g. "
                    + "; ".join(
                        f"{where[i]} ({wh[i, 0]:.1f}x{wh[i, 1]:.1f} px, best IoU {best_iou[i]:.2f})" for i in idx
                    )
                    + ".",
                    "Keep anchors from the data (detect.anchors=auto), use a larger input size (`--image-size`), or the"
                    " anchor-free detector (`--detector fcos`).",
                    {"count": int(unmatched.sum()), "share": share, "match_iou": match_iou},
                )
            )
    return out
