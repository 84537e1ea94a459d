"""How well a backbone's feature strides fit the training boxes at an input size.

A detector can only learn a box that some location of its pyramid is assigned to. torchvision's
FCOS (headstart's CPU default) assigns a location to a box only when the location's centre lies
inside the box (and near its centre); Faster R-CNN's and RetinaNet's anchors sit on the same grid.
A box narrower than the finest level's stride ``s`` contains a grid column only with probability
``w / s`` (over its position), so the expected share of boxes that the pyramid can match is the
mean over boxes of ``min(1, w / s) * min(1, h / s)``: 1.0 when every box spans at least one
stride in both directions, lower when the input size makes objects smaller than the grid. Boxes
larger than the coarsest level are always matched (the levels above the backbone's, P6/P7 or the
max-pooled one, take them), so only the finest stride enters. Written here because it is a few
lines of arithmetic that no library exposes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stride_fit", "small_box_share"]


def _wh(box_sizes) -> np.ndarray:
    wh = np.asarray(box_sizes, dtype=np.float64).reshape(-1, 2)
    if (wh < 0).any() or not np.isfinite(wh).all():
        raise ValueError("box sizes must be finite widths and heights >= 0")
    return wh


def stride_fit(box_sizes, finest_stride: float) -> float:
    """Expected share of boxes ((N, 2) widths and heights at the input size) that a grid of
    ``finest_stride`` pixels has a location inside; NaN without boxes."""
    wh = _wh(box_sizes)
    if not len(wh):
        return float("nan")
    if finest_stride <= 0:
        raise ValueError(f"finest_stride must be > 0; got {finest_stride}")
    cover = np.minimum(1.0, wh / float(finest_stride))
    return float(np.mean(cover[:, 0] * cover[:, 1]))


def small_box_share(box_sizes, finest_stride: float) -> float:
    """Share of boxes whose shorter side is below ``finest_stride`` pixels; NaN without boxes."""
    wh = _wh(box_sizes)
    if not len(wh):
        return float("nan")
    return float(np.mean(wh.min(axis=1) < finest_stride))
