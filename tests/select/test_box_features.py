"""Box-level features for ranking detection backbones: level assignment, RoI pooling on planted
feature maps, background RoIs, and the stride-fit measure on hand-made boxes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from headstart.select.box_features import (
    BACKGROUND_MAX_OVERLAP,
    POOL,
    assign_levels,
    background_boxes,
    image_rois,
    pool_boxes,
)
from headstart.select.stride_fit import small_box_share, stride_fit

STRIDES = (8, 16, 32)


def _square(side: float, x: float = 0.0, y: float = 0.0) -> list[float]:
    return [x, y, x + side, y + side]


def test_levels_follow_fpn_rule_and_clamp():
    # floor(4 + log2(side / 224)): 224 -> stride 16, 448 -> stride 32, 112 -> stride 8; clamped at both ends
    sides = [20, 111, 112, 223, 224, 447, 448, 2000]
    levels = assign_levels([_square(s) for s in sides], STRIDES).tolist()
    assert levels == [0, 0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="strides must double"):
        assign_levels([_square(10)], (8, 32))


def _maps(batch: int = 2, size: int = 512):
    """Zero feature maps of a size x size batch at strides 8/16/32 with 2, 3 and 1 channels."""
    return [torch.zeros(batch, c, size // s, size // s) for c, s in zip((2, 3, 1), STRIDES)]


def test_pooling_reads_the_planted_cells_of_the_right_image_and_level():
    maps = _maps()
    maps[0][1, 1, 2:4, 4:6] = 5.0  # image 1, stride-8 level, channel 1: pixels x 32-48, y 16-32
    maps[1][1, 2, 1, 2] = 7.0  # image 1, stride-16 level, channel 2: pixels x 32-48, y 16-32
    maps[2][1, 0] = 3.0  # image 1, stride-32 level: everywhere
    maps[2][1, 0, 10:14, 10:14] = 9.0  # image 1, stride 32, a large region: pixels 320-448
    boxes = [
        [32, 16, 48, 32],  # on the planted stride-8 cells, image 1
        [32, 16, 48, 32],  # the same place in image 0: nothing planted there
        [96, 96, 112, 112],  # elsewhere in image 1
        [320, 320, 448, 448],
    ]  # a 128 px box: still stride 8 by the rule
    big = [[0, 0, 448, 448]]  # a 448 px box: the stride-32 level only
    feats = pool_boxes(maps, STRIDES, torch.tensor(boxes + big, dtype=torch.float32), [1, 0, 1, 1, 1])
    d0, d1, d2 = 2 * POOL * POOL, 3 * POOL * POOL, 1 * POOL * POOL
    assert feats.shape == (5, d0 + d1 + d2)
    lvl0 = feats[:, :d0].reshape(5, 2, POOL, POOL)
    lvl1 = feats[:, d0 : d0 + d1].reshape(5, 3, POOL, POOL)
    lvl2 = feats[:, d0 + d1 :].reshape(5, 1, POOL, POOL)
    # the planted stride-8 cells, exactly, in every bin; the other channel untouched
    assert torch.allclose(lvl0[0, 1], torch.full((POOL, POOL), 5.0)) and lvl0[0, 0].abs().max() == 0
    assert lvl0[1].abs().max() == 0 and lvl0[2].abs().max() == 0  # other image, other place
    # the coarser levels are pooled too for a box assigned to the finest level
    assert lvl1[0, 2].mean() > 0 and lvl1[1].abs().max() == 0
    assert torch.allclose(lvl2[0, 0], torch.full((POOL, POOL), 3.0))
    assert torch.allclose(lvl2[3, 0], torch.full((POOL, POOL), 9.0))
    # the big box maps to stride 32: the finer blocks stay zero
    assert feats[4, : d0 + d1].abs().max() == 0 and lvl2[4].abs().max() > 0


def test_background_rois_stay_away_from_the_boxes():
    rng = np.random.default_rng(0)
    boxes = np.array([[0, 0, 50, 50], [60, 60, 100, 100]], dtype=float)
    sizes = np.array([[20, 20], [30, 10], [500, 500]])  # the last one is shrunk to fit
    bg = background_boxes(boxes, 120, 110, sizes, 25, rng)
    assert 0 < len(bg) <= 25
    assert (bg[:, 0] >= 0).all() and (bg[:, 2] <= 120).all() and (bg[:, 3] <= 110).all()
    for b in bg:  # the share of each RoI's area inside each box
        lt, rb = np.maximum(b[:2], boxes[:, :2]), np.minimum(b[2:], boxes[:, 2:])
        inside = np.prod(np.clip(rb - lt, 0, None), axis=1) / np.prod(b[2:] - b[:2])
        assert inside.max() <= BACKGROUND_MAX_OVERLAP + 1e-9
    # a full image has no room: nothing is placed rather than an overlapping RoI
    assert len(background_boxes(np.array([[0, 0, 120, 110.0]]), 120, 110, sizes, 3, rng)) == 0


def test_image_rois_keep_unignored_boxes_and_add_background_class():
    samples = [
        SimpleNamespace(
            width=100, height=80, boxes=((10, 10, 30, 30), (50, 20, 90, 60)), labels=(0, 1), ignore=(False, True)
        ),
        SimpleNamespace(width=100, height=80, boxes=(), labels=(), ignore=()),  # a negative image
        SimpleNamespace(width=100, height=80, boxes=((5, 5, 25, 45),), labels=(1,), ignore=(False,)),
    ]
    rois = image_rois(samples, num_classes=2, seed=0)
    assert [r[1][r[1] < 2].tolist() for r in rois] == [[0], [], [1]]  # the ignored box is out
    assert np.allclose(rois[0][0][0], [10, 10, 30, 30])
    assert (rois[1][1] == 2).sum() >= 1  # a negative image gives at least one background RoI
    again = image_rois(samples, num_classes=2, seed=0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(rois, again))


def test_stride_fit_on_hand_made_boxes():
    wh = [[16, 16], [4, 8], [8, 2], [100, 40]]
    # per box min(1, w/8) * min(1, h/8): 1, 0.5, 0.25, 1
    assert stride_fit(wh, 8) == pytest.approx((1 + 0.5 + 0.25 + 1) / 4)
    assert small_box_share(wh, 8) == pytest.approx(0.5)
    # halving the input size halves every box: the fit drops
    assert stride_fit(np.asarray(wh) / 2, 8) < stride_fit(wh, 8)
    assert stride_fit(wh, 2) == 1.0 and small_box_share(wh, 2) == 0.0
    assert math.isnan(stride_fit(np.zeros((0, 2)), 8)) and math.isnan(small_box_share([], 8))
    with pytest.raises(ValueError, match="finite widths and heights"):
        stride_fit([[-1, 4]], 8)
    with pytest.raises(ValueError, match="finest_stride must be > 0"):
        stride_fit([[1, 4]], 0)
