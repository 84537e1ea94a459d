"""Ground truth and detections as checked numpy arrays: the one input format of the detection metrics.

Ground truth is a list of images, each a mapping with ``image_id`` (int), ``width``, ``height``,
``boxes`` (N, 4: x1, y1, x2, y2 in absolute pixels), ``labels`` (N class indices) and ``ignore``
(N bools: VOC "difficult" or COCO "crowd"; optional, all False when absent). Detections are mappings
with ``image_id``, ``boxes`` (M, 4 xyxy), ``scores`` (M) and ``labels`` (M); several mappings may
name the same image (they are concatenated), and an image without any has no detections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from headstart.errors import DataError

__all__ = ["ImageTruth", "ImageDetections", "as_ground_truth", "as_detections", "xyxy_to_xywh", "box_iou"]


@dataclass(frozen=True)
class ImageTruth:
    image_id: int
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float64, xyxy
    labels: np.ndarray  # (N,) int64
    ignore: np.ndarray  # (N,) bool


@dataclass(frozen=True)
class ImageDetections:
    image_id: int
    boxes: np.ndarray  # (M, 4) float64, xyxy
    scores: np.ndarray  # (M,) float64
    labels: np.ndarray  # (M,) int64


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 -> x, y, width, height (COCO's bbox)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def box_iou(dt_xywh: np.ndarray, gt_xywh: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU of each detection (rows) with each ground-truth box (columns), computed as COCO's
    ``maskApi.bbIou`` does (xywh, areas w * h, in that order of operations): for a crowd / ignored
    box the union is the detection's own area, so a detection inside an ignore region overlaps it."""
    d = np.asarray(dt_xywh, dtype=np.float64).reshape(-1, 1, 4)
    g = np.asarray(gt_xywh, dtype=np.float64).reshape(1, -1, 4)
    w = np.minimum(d[..., 0] + d[..., 2], g[..., 0] + g[..., 2]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 1] + d[..., 3], g[..., 1] + g[..., 3]) - np.maximum(d[..., 1], g[..., 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    da, ga = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = da + ga - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, dtype=bool).reshape(1, -1), da, union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _field(record: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return record[key]
    except (KeyError, TypeError):
        raise DataError(f"{where} has no {key!r}: each entry must be a mapping with {key!r}.") from None


def _boxes(value: Any, where: str) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"{where}: 'boxes' must have shape (N, 4) (x1, y1, x2, y2). Got shape {boxes.shape}.")
    if not np.isfinite(boxes).all():
        raise DataError(f"{where}: 'boxes' holds NaN or infinite values.")
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.size:
        raise DataError(f"{where}: box {int(bad[0])} {boxes[bad[0]].tolist()} has x2 < x1 or y2 < y1; boxes must"
                        " be x1, y1, x2, y2 in absolute pixels.")
    return boxes


def _labels(value: Any, n: int, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(value).reshape(-1)
    if labels.size != n:
        raise DataError(f"{where}: {n} boxes but {labels.size} labels.")
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0):
            raise DataError(f"{where}: 'labels' must be integer class indices. Got {labels[:5].tolist()}.")
    labels = labels.astype(np.int64)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DataError(f"{where}: 'labels' must be class indices in [0, {num_classes}). Got {int(bad[0])}.")
    return labels


def _image_id(value: Any, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{where}: 'image_id' must be an int. Got {value!r}.")
    return int(value)


def as_ground_truth(ground_truth: Iterable[Mapping[str, Any]], num_classes: int) -> list[ImageTruth]:
    """Check and convert ground truth; image ids must be unique."""
    images: list[ImageTruth] = []
    seen: set[int] = set()
    for i, record in enumerate(ground_truth):
        where = f"ground_truth[{i}]"
        image_id = _image_id(_field(record, "image_id", where), where)
        where = f"ground_truth[{i}] (image_id {image_id})"
        if image_id in seen:
            raise DataError(f"{where}: image_id {image_id} appears twice; image ids must be unique.")
        seen.add(image_id)
        boxes = _boxes(_field(record, "boxes", where), where)
        labels = _labels(_field(record, "labels", where), len(boxes), num_classes, where)
        ignore = record.get("ignore") if hasattr(record, "get") else None
        ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, dtype=bool).reshape(-1)
        if ignore.size != len(boxes):
            raise DataError(f"{where}: {len(boxes)} boxes but {ignore.size} 'ignore' flags.")
        width, height = _field(record, "width", where), _field(record, "height", where)
        images.append(ImageTruth(image_id, int(width), int(height), boxes, labels, ignore))
    if not images:
        raise DataError("ground_truth holds no images: there is nothing to evaluate.")
    return images


def as_detections(
    detections: Iterable[Mapping[str, Any]], image_ids: Sequence[int], num_classes: int
) -> dict[int, ImageDetections]:
    """Check and convert detections: one entry per image of ``image_ids`` (empty where none)."""
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {i: [] for i in image_ids}
    for i, record in enumerate(detections):
        where = f"detections[{i}]"
        image_id = _image_id(_field(record, "image_id", where), where)
        where = f"detections[{i}] (image_id {image_id})"
        if image_id not in parts:
            raise DataError(f"{where}: image_id {image_id} is not an image of the ground truth.")
        boxes = _boxes(_field(record, "boxes", where), where)
        scores = np.asarray(_field(record, "scores", where), dtype=np.float64).reshape(-1)
        if scores.size != len(boxes):
            raise DataError(f"{where}: {len(boxes)} boxes but {scores.size} scores.")
        if not np.isfinite(scores).all():
            raise DataError(f"{where}: 'scores' holds NaN or infinite values.")
        labels = _labels(_field(record, "labels", where), len(boxes), num_classes, where)
        parts[image_id].append((boxes, scores, labels))
    out = {}
    for image_id, chunks in parts.items():
        if not chunks:
            chunks = [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))]
        boxes, scores, labels = (np.concatenate(c) for c in zip(*chunks))
        out[image_id] = ImageDetections(image_id, boxes, scores, labels)
    return out
