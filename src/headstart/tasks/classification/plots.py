"""Learning curves and the confusion matrix as PNG files (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from headstart._plotting import pyplot, save_figure

__all__ = ["plot_learning_curves", "plot_confusion_matrix"]


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss and accuracy per epoch for train and val; dotted lines mark stage changes (lp-ft)."""
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], label="val")
    ax_loss.set_title("loss")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in history], label="train")
    ax_acc.plot(epochs, [r["val_accuracy"] for r in history], label="val")
    ax_acc.plot(epochs, [r["val_balanced_accuracy"] for r in history], label="val balanced", linestyle="--")
    ax_acc.set_title("accuracy")
    for prev, row in zip(history, history[1:]):
        if row["stage"] != prev["stage"]:
            for ax in (ax_loss, ax_acc):
                ax.axvline(row["epoch"] - 0.5, color="grey", linestyle=":", label=f"start of {row['stage']}")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path) -> Path:
    """The confusion matrix, normalised per true class, with raw counts written in each cell."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    counts = np.asarray(matrix)
    n = len(classes)
    size = min(4 + 0.45 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size))
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    disp = ConfusionMatrixDisplay(norm, display_labels=list(classes))
    disp.plot(ax=ax, cmap="Blues", colorbar=False, include_values=False, xticks_rotation=45 if n > 4 else "horizontal")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title("confusion matrix (rows: true, normalised)")
    return save_figure(fig, path)
