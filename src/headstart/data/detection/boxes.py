"""Box geometry for the checks: conversions from the COCO and YOLO forms, fitting a box to its
image, and finding duplicate boxes. Pure functions on numbers, tested on their own."""

from __future__ import annotations

import math
from typing import Sequence

__all__ = [
    "xywh_to_xyxy",
    "cxcywh_to_xyxy",
    "fit_box",
    "iou_matrix",
    "duplicate_flags",
    "CLIP_TOLERANCE",
    "DUPLICATE_IOU",
]

CLIP_TOLERANCE = 0.01
"""Pixels a box may overshoot the image by and be clipped without a report: rounding noise of
normalised coordinates and float exports, not an annotation mistake."""

DUPLICATE_IOU = 0.95
"""Two boxes of the same class in one image overlapping more than this are one object drawn twice."""


def xywh_to_xyxy(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """COCO's ``[x, y, width, height]`` (top-left corner) to ``(x1, y1, x2, y2)``."""
    return (float(x), float(y), float(x) + float(w), float(y) + float(h))


def cxcywh_to_xyxy(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    """YOLO's centre, width and height to ``(x1, y1, x2, y2)``, in the same units."""
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def fit_box(box: Sequence[float], width: int, height: int) -> tuple[tuple[float, float, float, float] | None, str]:
    """Check ``box`` (xyxy pixels) against a ``width`` x ``height`` image.

    Returns ``(box, verdict)``: ``'ok'`` (unchanged, or clipped by at most
    :data:`CLIP_TOLERANCE`), ``'clipped'`` (partly outside, cut to the image), or ``(None,
    verdict)`` for a box to drop: ``'not-finite'`` (NaN or infinite), ``'empty'`` (zero or negative
    width or height) or ``'outside'`` (no part inside the image).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None, "not-finite"
    if x2 <= x1 or y2 <= y1:
        return None, "empty"
    if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
        return None, "outside"
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    overshoot = max(-x1, -y1, x2 - width, y2 - height, 0.0)
    if overshoot == 0.0:
        return (x1, y1, x2, y2), "ok"
    return clipped, ("ok" if overshoot <= CLIP_TOLERANCE else "clipped")


def iou_matrix(boxes: Sequence[Sequence[float]]):
    """Pairwise intersection over union of xyxy boxes, as an ``(n, n)`` numpy array."""
    import numpy as np

    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(b[:, None, :2], b[None, :, :2])
    rb = np.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def duplicate_flags(
    boxes: Sequence[Sequence[float]], labels: Sequence[int], threshold: float = DUPLICATE_IOU
) -> list[int | None]:
    """For each box, the index of an earlier box of the same label it duplicates (IoU above
    ``threshold``), or ``None``. The first of a group is kept; each later one points at it."""
    out: list[int | None] = [None] * len(boxes)
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for members in by_label.values():
        if len(members) < 2:
            continue
        iou = iou_matrix([boxes[i] for i in members])
        kept: list[int] = []
        for a in range(len(members)):
            match = next((k for k in kept if iou[a, k] > threshold), None)
            if match is None:
                kept.append(a)
            else:
                out[members[a]] = members[match]
    return out
