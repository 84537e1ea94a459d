"""Classification metrics, all from scikit-learn: one implementation for validation (each epoch)
and test (the end of a run), so a class missing from a split is scored the same way in both."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Sequence

import numpy as np

from headstart.tasks.classification.spec import METRIC_DIRECTIONS, PROGRESS_COLUMNS

__all__ = ["METRIC_DIRECTIONS", "PROGRESS_COLUMNS", "classification_metrics", "summary_metrics", "val_metrics"]


def summary_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, float]:
    """accuracy, balanced accuracy and macro F1 over all ``num_classes`` classes (a class absent
    from ``y_true`` and never predicted scores F1 0 in the macro average, in every split)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(num_classes)
    with _quiet_sklearn():
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }


def val_metrics(probs, labels, num_classes: int) -> dict[str, float]:
    """The per-epoch validation metrics (without the loss) from probabilities and labels."""
    y_true = np.asarray(labels)
    y_pred = np.asarray(probs).argmax(1)
    return {f"val_{k}": v for k, v in summary_metrics(y_true, y_pred, num_classes).items()}


@contextlib.contextmanager
def _quiet_sklearn():
    """balanced_accuracy_score warns when y_pred holds a class absent from y_true; the number is
    still what we report, so the warning is noise in a training log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        yield


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str], *, top_k: int = 5
) -> dict[str, Any]:
    """accuracy, balanced accuracy, macro F1, top-k accuracy, per-class precision/recall/F1/support
    and the confusion matrix (rows: true class, columns: predicted class)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.arange(len(classes))
    y_pred = probs.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    # top-k with k >= the number of classes is always 1: reported as null rather than as a flattering 1.0
    top = None
    if top_k < len(classes):
        top = float(top_k_accuracy_score(y_true, probs, k=top_k, labels=labels))
    return {
        **summary_metrics(y_true, y_pred, len(classes)),
        "top_k": int(top_k),
        "top_k_accuracy": top,
        "n_test": int(len(y_true)),
        "classes": list(classes),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
