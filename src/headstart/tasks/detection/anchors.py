"""Anchor sizes and aspect ratios from the training boxes instead of COCO's defaults.

torchvision's defaults (sizes 8x the stride of each pyramid level, aspect ratios 0.5/1/2) were
chosen for COCO at 800 px. On a dataset of small objects at 320 px most boxes match no anchor at
IoU 0.5, so the RPN or RetinaNet head gets almost no positives. The rule here:

* aspect ratios (height / width): the 15th, 50th and 85th percentiles of the training boxes',
  rounded, clipped to [1/4, 4];
* sizes: three octave scales per level, ``m * stride * 2**(k/3)``, with the multiplier ``m`` from a
  short grid chosen to maximise the share of training boxes whose best anchor (same centre) has
  IoU >= 0.5 -- the same matching threshold the heads use; ties go to the larger ``m`` (fewer,
  better-localised positives).

The coverage of the chosen anchors and of torchvision's defaults is returned, printed by fit and
saved, so the choice can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["AnchorChoice", "choose_anchors", "anchor_coverage"]

_MULTIPLIERS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
_MATCH_IOU = 0.5


@dataclass(frozen=True)
class AnchorChoice:
    sizes: tuple[tuple[float, ...], ...]  # per level
    aspect_ratios: tuple[float, ...]
    coverage: float  # share of training boxes matched at IoU >= 0.5 by these anchors
    default_coverage: float  # ... by torchvision's defaults
    n_boxes: int

    def describe(self) -> str:
        sizes = ", ".join("/".join(f"{s:.0f}" for s in level) for level in self.sizes)
        ratios = ", ".join(f"{r:g}" for r in self.aspect_ratios)
        return (f"anchors from {self.n_boxes} training boxes: sizes {sizes} px, aspect ratios {ratios};"
                f" they match {self.coverage:.0%} of the boxes at IoU >= 0.5 (torchvision's defaults:"
                f" {self.default_coverage:.0%})")


def _shapes(sizes: Sequence[Sequence[float]], ratios: Sequence[float]) -> np.ndarray:
    """(K, 2) anchor widths and heights, as torchvision's AnchorGenerator makes them."""
    out = []
    for level in sizes:
        for s in level:
            for r in ratios:
                h = s * np.sqrt(r)
                out.append((s / np.sqrt(r), h))
    return np.asarray(out, dtype=np.float64)


def anchor_coverage(wh: np.ndarray, sizes: Sequence[Sequence[float]], ratios: Sequence[float]) -> float:
    """Share of boxes (``wh``: (N, 2) widths and heights) whose best same-centre anchor has IoU >= 0.5."""
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if len(wh) == 0:
        return float("nan")
    a = _shapes(sizes, ratios)
    inter = np.minimum(wh[:, None, 0], a[None, :, 0]) * np.minimum(wh[:, None, 1], a[None, :, 1])
    union = wh[:, 0:1] * wh[:, 1:2] + (a[:, 0] * a[:, 1])[None, :] - inter
    best = (inter / union).max(axis=1)
    return float((best >= _MATCH_IOU).mean())


def _ratios(wh: np.ndarray) -> tuple[float, ...]:
    r = wh[:, 1] / np.maximum(wh[:, 0], 1e-6)
    qs = np.clip(np.quantile(r, [0.15, 0.5, 0.85]), 0.25, 4.0)
    rounded = sorted({round(float(q), 2) for q in qs})
    return tuple(rounded)


def choose_anchors(wh: np.ndarray, strides: Sequence[int], default_sizes: Sequence[Sequence[float]]) -> AnchorChoice:
    """The anchors for boxes ``wh`` ((N, 2) in the detector's input pixels) on levels ``strides``."""
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    default_ratios = (0.5, 1.0, 2.0)
    if len(wh) == 0:
        return AnchorChoice(tuple(tuple(s) for s in default_sizes), default_ratios, float("nan"), float("nan"), 0)
    ratios = _ratios(wh)
    best = None
    for m in _MULTIPLIERS:
        sizes = tuple(tuple(m * s * 2 ** (k / 3) for k in range(3)) for s in strides)
        cov = anchor_coverage(wh, sizes, ratios)
        if best is None or cov >= best[0]:
            best = (cov, sizes)
    return AnchorChoice(best[1], ratios, best[0], anchor_coverage(wh, default_sizes, default_ratios), len(wh))
