"""Box-level features for ranking detection backbones (``headstart rank`` on a detection dataset).

A detector sees an object through the pyramid level that its size maps to, and that level (after
the FPN's top-down pathway) carries the coarser levels' semantics too. So a box's feature here is
what a frozen backbone offers at that place: the backbone's ``features_only`` maps (the levels the
detector's FPN takes) are RoI-aligned inside the box (torchvision's ``roi_align``, ``POOL`` x
``POOL`` bins) on the level that FPN's rule assigns to the box's size (torchvision's
``LevelMapper``, Eq. 1 of Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017)
and on every coarser level; the finer levels' blocks stay zero. The vectors are concatenated in
level order, so every box has the same dimension.

Background is one more class: RoIs of the training boxes' own sizes placed so that no box covers
more than ``BACKGROUND_MAX_OVERLAP`` of their area (intersection over the RoI's own area, stricter
than IoU: a small RoI inside a large object is not background) (a detector must tell objects from the rest, not only
objects apart). Their number is that of an average class, at least one per image without boxes.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "POOL",
    "BACKGROUND_MAX_OVERLAP",
    "assign_levels",
    "pool_boxes",
    "background_boxes",
    "image_rois",
    "extract_box_features",
]

POOL = 2
BACKGROUND_MAX_OVERLAP = 0.1
_TRIES = 30  # placements tried per background RoI before giving up on it (a crowded image)


def assign_levels(boxes, strides: Sequence[int]):
    """Index into ``strides`` of the level each (N, 4) xyxy box maps to: FPN's rule
    floor(4 + log2(sqrt(area) / 224)) as torchvision's MultiScaleRoIAlign applies it, clamped to
    the levels there are (level k has stride 2**k)."""
    import torch
    from torchvision.ops.poolers import LevelMapper

    k = [int(round(math.log2(s))) for s in strides]
    if k != list(range(k[0], k[0] + len(k))):
        raise ValueError(f"strides must double from level to level; got {list(strides)}")
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return LevelMapper(k[0], k[-1])([boxes])


def pool_boxes(feature_maps: Sequence, strides: Sequence[int], boxes, image_index):
    """(N, sum(C_l) * POOL**2) features of ``boxes`` ((N, 4) xyxy in input pixels; ``image_index``
    (N,) their image in the batch): RoI-aligned on the assigned level and the coarser ones."""
    import torch
    from torchvision.ops import roi_align

    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    rois = torch.cat([torch.as_tensor(image_index, dtype=torch.float32).reshape(-1, 1), boxes], dim=1)
    levels = assign_levels(boxes, strides)
    blocks = []
    for level, (fmap, stride) in enumerate(zip(feature_maps, strides)):
        block = torch.zeros(len(boxes), fmap.shape[1] * POOL * POOL, dtype=fmap.dtype)
        use = torch.nonzero(levels <= level).flatten()
        if len(use):
            # sampling_ratio -1: ceil(bin size) samples a bin, an average over the whole box
            pooled = roi_align(
                fmap,
                rois[use].to(fmap.dtype),
                (POOL, POOL),
                spatial_scale=1.0 / stride,
                sampling_ratio=-1,
                aligned=True,
            )
            block[use] = pooled.flatten(1)
        blocks.append(block)
    return torch.cat(blocks, dim=1)


def _covered(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area inside each of ``boxes``."""
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    return inter / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)


def background_boxes(
    boxes: np.ndarray, width: float, height: float, sizes: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``count`` (K, 4) xyxy RoIs inside a ``width`` x ``height`` image, each with a (w, h)
    drawn from ``sizes`` (shrunk to fit), with at most ``BACKGROUND_MAX_OVERLAP`` of its area
    inside any of ``boxes``."""
    out: list[np.ndarray] = []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for _ in range(count):
        for _ in range(_TRIES):
            w, h = sizes[rng.integers(len(sizes))]
            w, h = min(w, width), min(h, height)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            box = np.array([x, y, x + w, y + h])
            if not len(boxes) or _covered(box, boxes).max() <= BACKGROUND_MAX_OVERLAP:
                out.append(box)
                break
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def image_rois(samples: Sequence[Any], num_classes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sample, (boxes (K, 4) xyxy in the image's own pixels, labels (K,)): its boxes that are
    not ignored, then background RoIs labelled ``num_classes``. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    kept = []
    for s in samples:
        keep = [i for i, ignored in enumerate(s.ignore) if not ignored]
        kept.append(
            (
                np.asarray([s.boxes[i] for i in keep], dtype=np.float64).reshape(-1, 4),
                np.asarray([s.labels[i] for i in keep], dtype=np.int64),
            )
        )
    n_boxes = sum(len(b) for b, _ in kept)
    # sizes relative to the image (so they transfer between images of different sizes)
    rel = [
        np.stack([(b[:, 2] - b[:, 0]) / s.width, (b[:, 3] - b[:, 1]) / s.height], 1)
        for s, (b, _) in zip(samples, kept)
        if len(b)
    ]
    rel_sizes = np.concatenate(rel) if rel else np.array([[0.25, 0.25]])
    per_image = n_boxes / max(num_classes, 1) / max(len(samples), 1)  # an average class, spread out
    out, owed = [], 0.0
    for s, (boxes, labels) in zip(samples, kept):
        owed += per_image
        count = max(int(owed), 0 if len(boxes) else 1)
        owed -= count
        bg = background_boxes(boxes, s.width, s.height, rel_sizes * [s.width, s.height], count, rng)
        out.append((np.concatenate([boxes, bg]), np.concatenate([labels, np.full(len(bg), num_classes)])))
    return out


def extract_box_features(
    body: Callable,
    strides: Sequence[int],
    samples: Sequence[Any],
    rois,
    pre,
    dev,
    *,
    batch_size: int = 16,
    cache=None,
    progress: Callable[[int], None] | None = None,
):
    """(features (N, D) float32, labels (N,) int64, box sizes (N, 2) w/h at the input size) of every
    RoI of ``rois`` (from :func:`image_rois`), the images read through ``cache`` resized by ``pre``
    (longer side = input size, normalised, padded at the bottom and right to a square batch)."""
    import torch

    from headstart.data.dataset import ImageCache

    cache = cache if cache is not None else ImageCache("none")
    size = pre.input_size
    mean = torch.tensor(pre.mean).view(3, 1, 1)
    std = torch.tensor(pre.std).view(3, 1, 1)
    feats, labels, sizes = [], [], []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            chunk = list(range(start, min(start + batch_size, len(samples))))
            batch = torch.zeros(len(chunk), 3, size, size)  # zeros = the mean once normalised
            boxes, owner, labs = [], [], []
            for j, i in enumerate(chunk):
                image = cache.get(samples[i].path, pre).float() / 255.0
                h, w = image.shape[-2:]
                batch[j, :, :h, :w] = (image - mean) / std
                scale = w / samples[i].width
                b, lab = rois[i]
                boxes.append(torch.as_tensor(b * scale, dtype=torch.float32))
                owner += [j] * len(b)
                labs.append(torch.as_tensor(lab))
            maps = [m.float().cpu() for m in body(dev.to_device(batch))]
            boxes_t = torch.cat(boxes) if boxes else torch.zeros(0, 4)
            if len(boxes_t):
                feats.append(pool_boxes(maps, strides, boxes_t, owner))
                labels.append(torch.cat(labs))
                sizes.append(boxes_t[:, 2:] - boxes_t[:, :2])
            if progress is not None:
                progress(len(chunk))
    if not feats:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 2)
    return torch.cat(feats), torch.cat(labels).long(), torch.cat(sizes)
