"""Likely mislabeled images, by confident learning (cleanlab) on out-of-fold predicted
probabilities of a linear probe on pretrained features (:func:`headstart.diagnose.features.cross_val_probe`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = ["find_label_issues", "check_label_issues"]


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Indices of likely label errors, most likely first (cleanlab's ``find_label_issues``)."""
    from cleanlab.filter import find_label_issues as _find

    labels = np.asarray(labels)
    present = np.unique(labels)
    # cleanlab wants every column to be a class with examples: drop empty ones, relabel densely
    remap = {c: i for i, c in enumerate(present)}
    probs = pred_probs[:, present]
    probs = probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
    dense = np.array([remap[c] for c in labels])
    return np.asarray(_find(dense, probs, return_indices_ranked_by="self_confidence"), dtype=int)


def check_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, paths: Sequence[Path], classes: Sequence[str],
    root: Path | None = None, *, medium: float = 0.03, high: float = 0.08, show: int = 10,
) -> list[Finding]:
    """A finding listing the images whose given label disagrees confidently with the probe."""
    issues = find_label_issues(labels, pred_probs)
    if len(issues) == 0:
        return []
    frac = len(issues) / len(labels)
    rel = (lambda p: str(Path(p).relative_to(root)) if root and Path(p).is_relative_to(root) else str(p))
    rows = [
        {"path": rel(paths[i]), "given": classes[labels[i]], "suggested": classes[int(pred_probs[i].argmax())],
         "confidence": float(pred_probs[i].max())}
        for i in issues
    ]
    severity = "high" if frac >= high else ("medium" if frac >= medium else "low")
    shown = "; ".join(f"{r['path']}: given {r['given']!r}, suggested {r['suggested']!r}" for r in rows[:show])
    return [Finding(
        "label-issues", severity,
        f"{len(issues)} of {len(labels)} images ({frac:.1%}) look mislabeled (confident learning on out-of-fold"
        f" probabilities of a linear probe on pretrained features): {shown}.",
        "Review these images (full list in `headstart doctor DATA --format json`) and fix or remove wrong labels;"
        " until then label smoothing helps (train.label_smoothing=0.1, the default).",
        {"images": rows, "fraction": frac},
    )]
