"""Losses and probabilities for binary (one logit, BCE) and multi-class (softmax, CE) heads."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["num_outputs", "ClassificationLoss", "logits_to_probs", "balanced_class_weights"]


def num_outputs(num_classes: int) -> int:
    """Binary problems get one logit trained with BCE-with-logits; others a softmax over classes."""
    return 1 if num_classes == 2 else num_classes


def logits_to_probs(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, num_outputs) logits -> (N, num_classes) probabilities."""
    logits = logits.float()
    if num_classes == 2:
        p1 = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p1, p1], dim=1)
    return logits.softmax(dim=1)


def balanced_class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """scikit-learn's ``compute_class_weight('balanced')``: n_samples / (n_classes * count)."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels)
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return torch.tensor(weights, dtype=torch.float32)


class ClassificationLoss(torch.nn.Module):
    """Cross-entropy (multi-class) or BCE-with-logits (binary), with label smoothing, optional class
    weights, and soft targets (mixup/cutmix give (N, C) probability targets)."""

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, *, smoothing: bool = True) -> torch.Tensor:
        eps = self.label_smoothing if smoothing else 0.0
        logits = logits.float()
        if self.num_classes == 2:
            soft = target[:, 1].float() if target.dim() == 2 else target.float()
            soft = soft * (1 - eps) + 0.5 * eps
            pos_weight = None
            if self.class_weights is not None:
                pos_weight = self.class_weights[1:2] / self.class_weights[0:1]
            return F.binary_cross_entropy_with_logits(logits.reshape(-1), soft, pos_weight=pos_weight)
        return F.cross_entropy(logits, target, weight=self.class_weights, label_smoothing=eps)
