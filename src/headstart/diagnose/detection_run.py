"""Checks of a finished detection run: over- and underfitting from the curves (history.csv:
train_loss and val_map per epoch), a poor default confidence threshold, and the classes that pull
mAP down (per-class AP of metrics.json). Pure functions on the run's numbers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = ["check_detection_curves", "f1_at", "check_conf_threshold", "check_weak_classes"]


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    vals = []
    for row in history:
        try:
            vals.append(float(row[key]))
        except (KeyError, TypeError, ValueError):
            vals.append(np.nan)
    return np.asarray(vals)


def check_detection_curves(
    history: Sequence[Mapping[str, Any]], *, drop: float = 0.1, rising: float = 0.1, low_map: float = 0.05
) -> list[Finding]:
    """Overfitting: val mAP peaked in the first 60% of the epochs and ended ``drop`` (relative) below its
    peak while the train loss kept falling. Underfitting: val mAP still rising by ``rising`` (relative)
    over the last third of the epochs, or staying below ``low_map`` while the train loss barely falls."""
    loss, vmap = _series(history, "train_loss"), _series(history, "val_map")
    ok = np.isfinite(loss) & np.isfinite(vmap)
    if ok.sum() < 3:
        return []
    loss, vmap = loss[ok], vmap[ok]
    n = len(vmap)
    best = int(np.argmax(vmap))
    peak, last = float(vmap[best]), float(vmap[-1])
    out = []
    if n >= 4 and peak > 0 and best + 1 <= 0.6 * n and last <= peak * (1 - drop) and loss[-1] < loss[best]:
        out.append(
            Finding(
                "detection-overfitting",
                "high" if last <= peak * (1 - 2.5 * drop) else "medium",
                f"Val mAP peaked at {peak:.3f} at epoch {best + 1} of {n} and fell to {last:.3f}, while the train loss kept"
                f" falling ({loss[best]:.3f} -> {loss[-1]:.3f}) (history.csv). The saved weights are the best epoch's,"
                " but the later epochs were wasted and the model memorises the training boxes.",
                "Stronger augmentation (`--augment strong`), fewer epochs (`--epochs`), train only the head longer"
                " (`--strategy head-ft`, detect.head_epochs) or a lower backbone LR (detect.backbone_lr_ratio=0.1); more"
                " annotated images help most.",
                {"best_epoch": best + 1, "peak_val_map": peak, "last_val_map": last},
            )
        )
        return out
    third = max(1, n // 3)
    before = float(vmap[: n - third].max())
    gain = (float(vmap[n - third :].max()) - before) / max(before, 1e-6)
    if best >= n - third and gain >= rising and before > 0:
        out.append(
            Finding(
                "detection-underfitting",
                "medium",
                f"Val mAP was still rising at the end: {before:.3f} before the last {third} epoch(s), {peak:.3f} at epoch"
                f" {best + 1} of {n} (+{gain:.0%}) (history.csv); the train loss went {loss[0]:.3f} -> {loss[-1]:.3f}.",
                f"Train longer (`--epochs {int(np.ceil(n * 1.5 / 5) * 5)}`); early stopping keeps the best epoch.",
                {"val_map": [float(v) for v in vmap], "gain_last_third": gain},
            )
        )
    elif peak < low_map and (loss[0] - loss.min()) / max(loss[0], 1e-12) < 0.1:
        out.append(
            Finding(
                "detection-underfitting",
                "high",
                f"Val mAP never passed {peak:.3f} in {n} epochs and the train loss barely moved ({loss[0]:.3f} ->"
                f" {loss.min():.3f}) (history.csv): the detector is not learning.",
                "Check that the backbone has pretrained weights (`headstart weights list`), raise the LR (`--lr`) or train"
                " longer (`--epochs`); check the boxes (this doctor's annotation findings).",
                {"val_map": [float(v) for v in vmap]},
            )
        )
    return out


def f1_at(scores: np.ndarray, tp: np.ndarray, n_gt: int, threshold: float) -> float:
    """Micro F1 keeping the detections scoring >= ``threshold`` (``tp``: 1 for a detection matched
    at IoU 0.5, from :class:`~headstart.tasks.detection.matching.Matches`)."""
    keep = np.asarray(scores) >= threshold
    n_tp = float(np.asarray(tp)[keep].sum())
    denom = keep.sum() + n_gt
    return 2 * n_tp / denom if denom else 0.0


def check_conf_threshold(
    conf: float | None,
    best_conf: float | None,
    f1_used: float,
    f1_best: float,
    *,
    split: str = "val",
    source: str = "model.json",
    medium: float = 0.03,
    high: float = 0.1,
) -> list[Finding]:
    """The run's default score threshold (``conf``, from ``source``) against the F1-best one on the
    evaluated split: how much F1 predict loses by it."""
    if conf is None or best_conf is None:
        return []
    loss = f1_best - f1_used
    if loss < medium:
        return []
    return [
        Finding(
            "poor-confidence-threshold",
            "high" if loss >= high else "medium",
            f"predict keeps boxes scoring >= {conf:.3f} ({source}); on the {split} split that gives F1 {f1_used:.3f},"
            f" while {best_conf:.3f} gives {f1_best:.3f} (-{loss:.3f} F1): "
            + ("too high, real objects are dropped." if conf > best_conf else "too low, false boxes are kept."),
            f"Use `headstart predict RUN IMAGES --conf {best_conf:.2f}`, or refit with detect.conf unset (the default is the"
            " F1-best threshold).",
            {"conf": conf, "best_conf": best_conf, "f1_used": f1_used, "f1_best": f1_best},
        )
    ]


def check_weak_classes(
    per_class: Mapping[str, Mapping[str, Any]],
    train_boxes: Mapping[str, int] | None = None,
    *,
    ratio: float = 0.5,
    min_gap: float = 0.05,
) -> list[Finding]:
    """Classes whose AP is below ``ratio`` times the mean AP of the other classes (metrics.json's
    ``per_class``), with how much mAP each one costs (what mAP would be at the others' mean)."""
    aps = {c: v.get("ap") for c, v in per_class.items() if v.get("n_boxes")}
    aps = {c: float(a) if a is not None else 0.0 for c, a in aps.items()}
    if len(aps) < 2:
        return []
    total = sum(aps.values())
    k = len(aps)
    weak = []
    for c, ap in aps.items():
        others = (total - ap) / (k - 1)
        if ap < ratio * others and others - ap >= min_gap:
            weak.append((c, ap, others, (others - ap) / k))
    if not weak:
        return []
    weak.sort(key=lambda w: -w[3])
    train_boxes = train_boxes or {}

    def describe(c: str, ap: float, others: float, cost: float) -> str:
        row = per_class[c]
        extra = f", {train_boxes[c]} training boxes" if c in train_boxes else ""
        recall = row.get("recall")
        rec = f", recall {recall:.0%} at the threshold" if recall is not None else ""
        return f"{c!r}: AP {ap:.3f} vs {others:.3f} for the others (costs {cost:.3f} mAP{extra}{rec})"

    severity = "high" if sum(w[3] for w in weak) >= 0.1 else "medium"
    return [
        Finding(
            "weak-classes",
            severity,
            "These classes pull mAP down (metrics.json, per_class): " + "; ".join(describe(*w) for w in weak[:8]) + ".",
            "Annotate more boxes of these classes, check their labels (this doctor's likely-wrong-box-labels finding)"
            " and, if their objects are small, train at a larger input size (`--image-size`).",
            {"classes": {c: {"ap": ap, "others_mean_ap": o, "map_cost": cost} for c, ap, o, cost in weak}},
        )
    ]
