"""Detection metrics: COCO's AP and AR (faster-coco-eval, the C++ port of pycocotools' COCOeval, on
COCO-format data built in memory) plus the confidence threshold that maximises F1, from one call.

Boxes are x1, y1, x2, y2 in absolute pixels; classes are indices into ``classes`` (COCO category
ids 1..C). Ground-truth boxes flagged ``ignore`` (VOC difficult, COCO crowd) become COCO crowd
regions: a detection on one is neither a true nor a false positive and the box is never a miss. The
protocol is COCO's: IoU 0.50:0.05:0.95, 101 recall points, at most 100 detections per image and
class, areas small < 32² <= medium < 96² <= large (box areas). A number COCOeval cannot compute (a
class or size range without ground truth; its -1) is None, written as JSON null.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from headstart._imports import optional_import
from headstart._validation import check_choice
from headstart.errors import DataError
from headstart.tasks.detection.matching import Matches, best_f1_threshold, confusion_matrix, match_records, pr_curves
from headstart.tasks.detection.records import (
    ImageDetections,
    ImageTruth,
    as_detections,
    as_ground_truth,
    xyxy_to_xywh,
)

__all__ = ["coco_metrics", "coco_results", "coco_ground_truth", "pr_curves", "confusion_matrix", "STATS_KEYS"]

# COCOeval.stats, in order
STATS_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def _classes(classes: Sequence[str]) -> list[str]:
    classes = [str(c) for c in classes]
    if not classes:
        raise DataError("classes is empty: detection metrics need at least one class.")
    return classes


def coco_ground_truth(truths: Sequence[ImageTruth], classes: Sequence[str]) -> dict[str, Any]:
    """The COCO annotation dict (images, categories with ids 1..C, annotations with xywh boxes,
    box areas, ``iscrowd`` = ignore) of checked ground truth."""
    annotations = []
    for truth in truths:
        for box, label, ignore in zip(xyxy_to_xywh(truth.boxes).tolist(), truth.labels.tolist(),
                                      truth.ignore.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": truth.image_id, "category_id": label + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": int(ignore)})
    return {
        "images": [{"id": t.image_id, "width": t.width, "height": t.height} for t in truths],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)],
        "annotations": annotations,
    }


def _results(dets: Iterable[ImageDetections]) -> list[dict[str, Any]]:
    out = []
    for det in dets:
        for box, score, label in zip(xyxy_to_xywh(det.boxes).tolist(), det.scores.tolist(), det.labels.tolist()):
            out.append({"image_id": det.image_id, "category_id": label + 1, "bbox": box, "score": score})
    return out


def coco_results(detections: Iterable[Mapping[str, Any]], classes: Sequence[str]) -> list[dict[str, Any]]:
    """Detections in the COCO results format (``image_id``, ``category_id`` = class index + 1,
    ``bbox`` = [x, y, width, height], ``score``), as written to predictions.json; in input order."""
    classes = _classes(classes)
    out = []
    for i, record in enumerate(detections):
        # checked one record at a time: predictions need no ground truth
        image_id = record.get("image_id") if hasattr(record, "get") else None
        if image_id is None:
            raise DataError(f"detections[{i}] has no 'image_id': each entry must be a mapping with 'image_id'.")
        det = as_detections([record], [image_id], len(classes))[image_id]
        out.extend(_results([det]))
    return out


def _none_if_missing(value: float) -> float | None:
    """COCOeval's -1 (nothing to average) -> None; anything else -> a plain float."""
    value = float(value)
    return None if value < 0 or not np.isfinite(value) else value


def _evaluate(gt_dict: dict[str, Any], results: list[dict[str, Any]], iou_type: str):
    """COCOeval_faster run on in-memory data -> the evaluator (``stats``, ``eval['precision']``)."""
    fce = optional_import("faster_coco_eval", extra="train", package="faster-coco-eval",
                          feature="headstart's detection metrics")
    COCO, COCOeval_faster = fce.COCO, fce.COCOeval_faster

    def quiet(*args, **kwargs):
        return None

    gt = COCO(gt_dict, print_function=quiet)
    annotations = [{**r, "id": i + 1, "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0}
                   for i, r in enumerate(results)]
    dt = COCO({"images": gt_dict["images"], "categories": gt_dict["categories"], "annotations": annotations},
              print_function=quiet)
    evaluator = COCOeval_faster(gt, dt, iou_type, print_function=quiet)
    evaluator.params.maxDets = [1, 10, 100]  # the standard protocol, stated
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


def _per_class_ap(precision: np.ndarray, k: int, t: int | None = None) -> float | None:
    """Mean of COCOeval's precision[T, R, K, area all, maxDets 100] over valid entries (AP)."""
    p = precision[:, :, k, 0, -1] if t is None else precision[t, :, k, 0, -1]
    valid = p[p > -1]
    return float(valid.mean()) if valid.size else None


def coco_metrics(ground_truth: Iterable[Mapping[str, Any]], detections: Iterable[Mapping[str, Any]],
                 classes: Sequence[str], *, iou_type: str = "bbox") -> dict[str, Any]:
    """COCO detection metrics (see the module docstring for the inputs and the protocol):

    ``task`` ("detect"), ``iou_type``, the 12 COCOeval stats ``map`` (AP@[.5:.95]), ``map50``,
    ``map75``, ``map_small``, ``map_medium``, ``map_large``, ``ar1``, ``ar10``, ``ar100``,
    ``ar_small``, ``ar_medium``, ``ar_large``; ``conf_threshold``, ``f1_at_threshold``,
    ``precision_at_threshold``, ``recall_at_threshold`` (the score threshold with the best F1 over
    all classes pooled at IoU 0.5: :func:`~headstart.tasks.detection.matching.best_f1_threshold`);
    ``per_class`` ({class: {ap, ap50, ap75, n_boxes, n_detections, precision, recall}}: precision and
    recall at ``conf_threshold``); ``classes``, ``n_images``, ``n_boxes`` (not ignored), ``n_ignored``,
    ``n_detections``.
    """
    iou_type = check_choice("iou_type", iou_type, ("bbox",))
    classes = _classes(classes)
    truths = as_ground_truth(ground_truth, len(classes))
    dets = as_detections(detections, [t.image_id for t in truths], len(classes))
    evaluator = _evaluate(coco_ground_truth(truths, classes), _results(dets.values()), iou_type)
    stats = dict(zip(STATS_KEYS, (_none_if_missing(v) for v in evaluator.stats[: len(STATS_KEYS)])))
    matched = match_records(truths, dets, len(classes), iou=0.5, max_dets=100)
    best = best_f1_threshold(matched)
    precision = np.asarray(evaluator.eval["precision"])  # [T, R, K, A, M]
    n_ignored = sum(int(t.ignore.sum()) for t in truths)
    metrics = {
        "task": "detect",
        "iou_type": iou_type,
        **stats,
        **best,
        "per_class": {
            name: {
                "ap": _per_class_ap(precision, k),
                "ap50": _per_class_ap(precision, k, 0),
                "ap75": _per_class_ap(precision, k, 5),
                "n_boxes": int(matched.n_gt[k]),
                "n_detections": int(sum(int((d.labels == k).sum()) for d in dets.values())),
                **_at_threshold(matched, k, best["conf_threshold"]),
            }
            for k, name in enumerate(classes)
        },
        "classes": classes,
        "n_images": len(truths),
        "n_boxes": int(matched.n_gt.sum()),
        "n_ignored": n_ignored,
        "n_detections": int(sum(len(d.scores) for d in dets.values())),
    }
    return metrics


def _at_threshold(matched: Matches, k: int, threshold: float | None) -> dict[str, float | None]:
    """Class k's precision and recall keeping detections scoring >= ``threshold`` (None when the
    threshold is None, precision None too when the class keeps no detection, recall None without
    ground truth)."""
    if threshold is None:
        return {"precision": None, "recall": None}
    scores, tp = matched.counted(k)
    keep = scores >= threshold
    n_tp, n_kept, n_gt = int(tp[keep].sum()), int(keep.sum()), int(matched.n_gt[k])
    return {"precision": n_tp / n_kept if n_kept else None, "recall": n_tp / n_gt if n_gt else None}
