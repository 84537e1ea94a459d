"""Test-set metrics, all from scikit-learn."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["classification_metrics"]


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str], *, top_k: int = 5
) -> dict[str, Any]:
    """accuracy, balanced accuracy, macro F1, top-k accuracy, per-class precision/recall/F1/support
    and the confusion matrix (rows: true class, columns: predicted class)."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

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
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
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
