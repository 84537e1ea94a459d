"""Detection plots as PNG files (matplotlib, headless Agg backend): precision-recall curves per class,
F1 against confidence, the confusion matrix with a background class, and learning curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from headstart._plotting import pyplot, save_figure

__all__ = ["plot_pr_curves", "plot_f1_confidence", "plot_confusion_matrix", "plot_learning_curves"]

_MAX_LEGEND = 12  # more classes than this: thin grey lines, no per-class legend


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.3f}"


def plot_pr_curves(curves: Mapping[str, Any], path: str | Path) -> Path:
    """Each class's COCO-interpolated precision against recall at the curves' IoU (from
    :func:`~headstart.tasks.detection.matching.pr_curves`), and their mean over classes in bold."""
    import numpy as np

    plt = pyplot()
    recall, precision, ap = curves["recall"], np.asarray(curves["precision"]), np.asarray(curves["ap"])
    classes, iou = curves["classes"], curves["iou"]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    many = len(classes) > _MAX_LEGEND
    for k, name in enumerate(classes):
        if not np.isfinite(ap[k]):
            continue  # no ground truth: no curve
        if many:
            ax.plot(recall, precision[k], color="grey", alpha=0.4, linewidth=0.8)
        else:
            ax.plot(recall, precision[k], linewidth=1.2, label=f"{name} {_fmt(ap[k])}")
    valid = np.isfinite(ap)
    if valid.any():
        ax.plot(recall, precision[valid].mean(axis=0), color="black", linewidth=2.5,
                label=f"all classes mAP@{iou:g} {_fmt(ap[valid].mean())}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"precision-recall at IoU {iou:g}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def plot_f1_confidence(curves: Mapping[str, Any], path: str | Path) -> Path:
    """F1 against the confidence threshold per class and over all classes pooled (bold), with the
    F1-best threshold marked."""
    import numpy as np

    plt = pyplot()
    grid, f1_at, classes = curves["confidence"], np.asarray(curves["f1_at"]), curves["classes"]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    many = len(classes) > _MAX_LEGEND
    for k, name in enumerate(classes):
        if not np.isfinite(f1_at[k]).any():
            continue
        if many:
            ax.plot(grid, f1_at[k], color="grey", alpha=0.4, linewidth=0.8)
        else:
            ax.plot(grid, f1_at[k], linewidth=1.2, label=name)
    if np.isfinite(curves["f1_all"]).any():
        ax.plot(grid, curves["f1_all"], color="black", linewidth=2.5, label="all classes")
    threshold = curves.get("conf_threshold")
    if threshold is not None:
        f1 = curves["f1_at_threshold"]
        ax.axvline(threshold, color="grey", linestyle=":")
        ax.plot([threshold], [f1], "o", color="black", label=f"best F1 {_fmt(f1)} at {threshold:.3f}")
    ax.set(xlim=(grid[0], grid[-1]), ylim=(0, 1.02), xlabel="confidence threshold", ylabel="F1",
           title=f"F1 against confidence at IoU {curves['iou']:g}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path) -> Path:
    """The (C + 1) x (C + 1) detection confusion matrix of
    :func:`~headstart.tasks.detection.matching.confusion_matrix` (rows: true class, then background
    for false positives; columns: predicted class, then background for misses), normalised per row,
    with the raw counts written in each cell."""
    import numpy as np

    plt = pyplot()
    counts = np.asarray(matrix)
    labels = [*map(str, classes), "background"]
    n = len(labels)
    if counts.shape != (n, n):
        raise ValueError(f"matrix must be {n} x {n} (the classes and background). Got shape {counts.shape}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    size = min(4 + 0.45 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted", ylabel="true")
    if n <= 31:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title("confusion matrix (rows: true, normalised)")
    return save_figure(fig, path)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the rows where ``key`` holds a number (a CSV's empty cells are skipped)."""
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            xs.append(float(row["epoch"]))
            ys.append(value)
    return xs, ys


def plot_learning_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Losses (``train_loss``, ``val_loss``, each ``train_loss_<part>`` dashed) and validation
    metrics (``val_map``, ``val_map50``, ``val_map75`` and any other ``val_`` number) per epoch, for
    the columns that exist; dotted lines mark stage changes."""
    plt = pyplot()
    keys = list(dict.fromkeys(k for row in history for k in row))
    losses = [k for k in ("train_loss", "val_loss") if k in keys]
    parts = sorted(k for k in keys if k.startswith(("train_loss_", "val_loss_")))
    preferred = [k for k in ("val_map", "val_map50", "val_map75") if k in keys]
    scores = preferred + sorted(k for k in keys if k.startswith("val_") and k not in preferred
                                and k != "val_loss" and not k.startswith("val_loss_") and _series(history, k)[1])
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
    for key in losses + parts:
        xs, ys = _series(history, key)
        if ys:
            ax_loss.plot(xs, ys, label=key.replace("_loss", "").replace("_", " "), linestyle="--" if key in parts else "-",
                         linewidth=1 if key in parts else 1.8, marker="." if len(ys) < 3 else None)
    for key in scores:
        xs, ys = _series(history, key)
        if ys:
            ax_score.plot(xs, ys, label=key.removeprefix("val_"), marker="." if len(ys) < 3 else None)
    ax_loss.set_title("loss")
    ax_score.set_title("validation")
    for prev, row in zip(history, history[1:]):
        if "stage" in row and row.get("stage") != prev.get("stage"):
            for ax in (ax_loss, ax_score):
                ax.axvline(float(row["epoch"]) - 0.5, color="grey", linestyle=":", label=f"start of {row['stage']}")
    for ax in (ax_loss, ax_score):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return save_figure(fig, path)
