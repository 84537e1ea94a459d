"""Detections matched to ground truth at one IoU threshold, the way COCOeval's ``evaluateImg`` does
it (area range "all"), and what is computed from the matches: the confidence threshold that
maximises F1, precision-recall and F1-confidence curves, and the confusion matrix with a background
class.

Matching, per image and class: detections are taken in descending score (at most ``max_dets``, 100
as in COCO's protocol), and each takes the unmatched, not ignored ground-truth box with which it has
the highest IoU >= the threshold. A detection with no such box but an IoU >= the threshold with an
ignored box (crowd, VOC difficult; COCO's crowd IoU: intersection over the detection's area) is
ignored: neither a true nor a false positive. Ignored boxes are never misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from headstart.tasks.detection.records import (
    ImageDetections,
    ImageTruth,
    as_detections,
    as_ground_truth,
    box_iou,
    xyxy_to_xywh,
)

__all__ = ["Matches", "match_detections", "match_records", "best_f1_threshold", "pr_curves", "confusion_matrix",
           "RECALL_THRESHOLDS"]

# COCO's 101 recall thresholds 0, 0.01, ..., 1 (np.linspace, as in COCOeval's Params)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Matches:
    """One row per detection that takes part (the top ``max_dets`` per image and class), images in
    ascending id, each in descending score; ``n_gt``: the ground-truth boxes per class, not ignored."""

    labels: np.ndarray  # (D,) int64
    scores: np.ndarray  # (D,) float64
    tp: np.ndarray  # (D,) bool: matched to a ground-truth box of its class
    ignored: np.ndarray  # (D,) bool: matched only to an ignored box, out of the metric
    n_gt: np.ndarray  # (C,) int64

    def counted(self, label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, tp) of the counted (not ignored) detections, of one class or of all, in
        descending score (stable, so ties keep COCO's image order)."""
        keep = ~self.ignored if label is None else (~self.ignored & (self.labels == label))
        scores, tp = self.scores[keep], self.tp[keep]
        order = np.argsort(-scores, kind="mergesort")
        return scores[order], tp[order]


def _match_image(truth: ImageTruth, det: ImageDetections, iou: float, max_dets: int):
    """-> (kept detection indices in descending score, tp, ignored, gt_matched) for one image."""
    by_class = np.lexsort((-det.scores, det.labels))  # stable: by class, then descending score
    labels_sorted = det.labels[by_class]
    starts = np.searchsorted(labels_sorted, labels_sorted, side="left")
    kept = by_class[np.arange(len(by_class)) - starts < max_dets]
    kept = kept[np.argsort(-det.scores[kept], kind="mergesort")]
    n_dt, n_gt = len(kept), len(truth.labels)
    tp, ignored = np.zeros(n_dt, bool), np.zeros(n_dt, bool)
    gt_matched = np.zeros(n_gt, bool)
    if n_dt == 0 or n_gt == 0:
        return kept, tp, ignored, gt_matched
    ious = box_iou(xyxy_to_xywh(det.boxes[kept]), xyxy_to_xywh(truth.boxes), truth.ignore)
    thr = min(iou, 1 - 1e-10)  # COCO's bound, so that IoU 1.0 still matches at a threshold of 1
    ok = (ious >= thr) & (det.labels[kept][:, None] == truth.labels[None, :])
    regular = ok & ~truth.ignore[None, :]
    ignored[:] = (ok & truth.ignore[None, :]).any(axis=1)
    for d in np.flatnonzero(regular.any(axis=1)):  # only detections that may take a box compete
        cand = regular[d] & ~gt_matched
        if cand.any():
            values = np.where(cand, ious[d], -1.0)
            m = n_gt - 1 - int(np.argmax(values[::-1]))  # ties: the last box, as COCO's loop
            gt_matched[m], tp[d], ignored[d] = True, True, False
    return kept, tp, ignored, gt_matched


def match_records(truths: Sequence[ImageTruth], dets: Mapping[int, ImageDetections], num_classes: int, *,
                  iou: float = 0.5, max_dets: int = 100) -> Matches:
    """:func:`match_detections` on already checked records."""
    labels, scores, tps, ignoreds = [], [], [], []
    n_gt = np.zeros(num_classes, dtype=np.int64)
    for truth in sorted(truths, key=lambda t: t.image_id):
        det = dets[truth.image_id]
        kept, tp, ignored, _ = _match_image(truth, det, iou, max_dets)
        labels.append(det.labels[kept])
        scores.append(det.scores[kept])
        tps.append(tp)
        ignoreds.append(ignored)
        n_gt += np.bincount(truth.labels[~truth.ignore], minlength=num_classes)
    return Matches(np.concatenate(labels).astype(np.int64), np.concatenate(scores).astype(np.float64),
                   np.concatenate(tps).astype(bool), np.concatenate(ignoreds).astype(bool), n_gt)


def match_detections(ground_truth: Iterable[Mapping[str, Any]], detections: Iterable[Mapping[str, Any]],
                     classes: Sequence[str], *, iou: float = 0.5, max_dets: int = 100) -> Matches:
    """Match detections to ground truth at one IoU threshold (inputs as for ``coco_metrics``)."""
    truths = as_ground_truth(ground_truth, len(classes))
    dets = as_detections(detections, [t.image_id for t in truths], len(classes))
    return match_records(truths, dets, len(classes), iou=iou, max_dets=max_dets)


def best_f1_threshold(matches: Matches) -> dict[str, float | None]:
    """The score threshold (keep detections with score >= it) with the highest F1 over all classes
    pooled (micro: TP, FP and misses summed over classes), among the detections' own scores; ties go
    to the highest threshold. F1 is 0.0 when nothing is found and None when there is neither ground
    truth nor a detection; the threshold, precision and recall are None when F1 is 0 or None."""
    scores, tp = matches.counted()
    n_gt = int(matches.n_gt.sum())
    out: dict[str, float | None] = {"conf_threshold": None, "f1_at_threshold": None,
                                    "precision_at_threshold": None, "recall_at_threshold": None}
    if n_gt == 0 and scores.size == 0:
        return out
    out["f1_at_threshold"] = 0.0
    if not tp.any():
        return out
    cum_tp = np.cumsum(tp)
    n_kept = np.arange(1, len(scores) + 1)
    last = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))  # the last detection of each score
    f1 = 2 * cum_tp[last] / (n_kept[last] + n_gt)  # 2TP / (2TP + FP + FN)
    best = last[int(np.argmax(f1))]
    out.update(conf_threshold=float(scores[best]), f1_at_threshold=float(f1.max()),
               precision_at_threshold=float(cum_tp[best] / n_kept[best]),
               recall_at_threshold=float(cum_tp[best] / n_gt))
    return out


def _precision_at_recall(tp: np.ndarray, n_gt: int) -> np.ndarray:
    """COCO's interpolated precision at the 101 recall thresholds (``accumulate``), from counted
    detections in descending score; 0 beyond the highest recall reached."""
    cum_tp = np.cumsum(tp).astype(np.float64)
    cum_fp = np.cumsum(~tp).astype(np.float64)
    recall = cum_tp / n_gt
    precision = cum_tp / (cum_tp + cum_fp + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    q = np.zeros(len(RECALL_THRESHOLDS))
    inds = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    valid = inds < len(precision)
    q[valid] = precision[inds[valid]]
    return q


def _at_confidence(scores: np.ndarray, tp: np.ndarray, n_gt: int, grid: np.ndarray):
    """Precision, recall and F1 when detections with score >= each value of ``grid`` are kept
    (scores descending); precision is 1 where nothing is kept, F1 is NaN without ground truth."""
    n_kept = np.searchsorted(-scores, -grid, side="right")
    n_tp = np.concatenate([[0], np.cumsum(tp)])[n_kept].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_kept > 0, n_tp / np.maximum(n_kept, 1), 1.0)
        recall = n_tp / n_gt if n_gt else np.full(len(grid), np.nan)
        f1 = 2 * n_tp / (n_kept + n_gt) if n_gt else np.full(len(grid), np.nan)
    return precision, recall, f1


def pr_curves(ground_truth: Iterable[Mapping[str, Any]], detections: Iterable[Mapping[str, Any]],
              classes: Sequence[str], *, iou: float = 0.5, max_dets: int = 100, points: int = 1001,
              matches: Matches | None = None) -> dict[str, Any]:
    """Curves for plots, as numpy arrays (pass ``matches`` to reuse a matching; then the inputs are
    not read):

    * ``recall`` (101,): COCO's recall thresholds; ``precision`` (C, 101): each class's interpolated
      precision there (NaN rows for classes without ground truth) and ``ap`` (C,) their means: AP at
      ``iou`` as COCOeval computes it (AP50 at the default 0.5);
    * ``confidence`` (points,): a grid over [0, 1] (wider if scores fall outside); per class
      ``precision_at`` / ``recall_at`` / ``f1_at`` (C, points) when detections scoring >= each value
      are kept, and the pooled ``f1_all`` / ``precision_all`` / ``recall_all`` (points,);
    * ``n_gt`` (C,), ``classes``, ``iou`` and :func:`best_f1_threshold`'s entries.
    """
    if matches is None:
        matches = match_detections(ground_truth, detections, classes, iou=iou, max_dets=max_dets)
    num_classes = len(classes)
    lo = min(0.0, float(matches.scores.min(initial=0.0)))
    hi = max(1.0, float(matches.scores.max(initial=1.0)))
    grid = np.linspace(lo, hi, points)
    precision = np.full((num_classes, len(RECALL_THRESHOLDS)), np.nan)
    at = np.full((3, num_classes, points), np.nan)
    for c in range(num_classes):
        scores, tp = matches.counted(c)
        n_gt = int(matches.n_gt[c])
        if n_gt:
            precision[c] = _precision_at_recall(tp, n_gt)
        at[:, c] = _at_confidence(scores, tp, n_gt, grid)
    scores, tp = matches.counted()
    p_all, r_all, f1_all = _at_confidence(scores, tp, int(matches.n_gt.sum()), grid)
    with np.errstate(invalid="ignore"):
        ap = np.where(matches.n_gt > 0, precision.mean(axis=1), np.nan)
    return {
        "classes": list(classes), "iou": float(iou), "recall": RECALL_THRESHOLDS.copy(), "precision": precision,
        "ap": ap, "confidence": grid, "precision_at": at[0], "recall_at": at[1], "f1_at": at[2],
        "precision_all": p_all, "recall_all": r_all, "f1_all": f1_all, "n_gt": matches.n_gt.copy(),
        **best_f1_threshold(matches),
    }


def confusion_matrix(ground_truth: Iterable[Mapping[str, Any]], detections: Iterable[Mapping[str, Any]],
                     classes: Sequence[str], *, iou: float = 0.5, conf: float | None = None,
                     max_dets: int = 100) -> np.ndarray:
    """A (C + 1, C + 1) int64 matrix of counts: rows are the true class, plus a last row
    "background" for false positives; columns are the predicted class, plus a last column
    "background" for missed boxes.

    Detections scoring >= ``conf`` take part (None: the F1-best threshold of
    :func:`best_f1_threshold`, or every detection when there is none). First each is matched within
    its class exactly as the metrics do (the diagonal: true positives; a detection matched to an
    ignored box is dropped); then, per image, the detections still unmatched take, in descending
    score, the unmatched box of another class with the highest IoU >= ``iou`` (a confusion); what is
    left is background. Row c sums to class c's boxes (ignored ones excluded)."""
    num_classes = len(classes)
    truths = as_ground_truth(ground_truth, num_classes)
    dets = as_detections(detections, [t.image_id for t in truths], num_classes)
    if conf is None:
        conf = best_f1_threshold(match_records(truths, dets, num_classes, iou=iou, max_dets=max_dets))[
            "conf_threshold"]
    bg = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for truth in truths:
        det = dets[truth.image_id]
        if conf is not None:  # matching is greedy in descending score: no match above conf changes
            keep = det.scores >= conf
            det = ImageDetections(det.image_id, det.boxes[keep], det.scores[keep], det.labels[keep])
        kept, tp, ignored, gt_matched = _match_image(truth, det, iou, max_dets)
        dt_labels = det.labels[kept]
        np.add.at(matrix, (dt_labels[tp], dt_labels[tp]), 1)
        free_dt = np.flatnonzero(~tp & ~ignored)  # positions in kept, in descending score
        free_gt = np.flatnonzero(~gt_matched & ~truth.ignore)
        if free_dt.size and free_gt.size:
            ious = box_iou(xyxy_to_xywh(det.boxes[kept[free_dt]]), xyxy_to_xywh(truth.boxes[free_gt]))
            ious[ious < min(iou, 1 - 1e-10)] = -1.0
            taken = np.zeros(free_gt.size, bool)
            for i in range(free_dt.size):
                values = np.where(taken, -1.0, ious[i])
                if values.max() < 0:
                    continue
                g = int(np.argmax(values))
                taken[g] = True
                matrix[truth.labels[free_gt[g]], dt_labels[free_dt[i]]] += 1
                free_dt[i] = -1
            free_gt = free_gt[~taken]
        free_dt = free_dt[free_dt >= 0]
        np.add.at(matrix, (np.full(free_dt.size, bg), dt_labels[free_dt]), 1)
        np.add.at(matrix, (truth.labels[free_gt], np.full(free_gt.size, bg)), 1)
    return matrix
