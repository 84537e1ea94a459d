"""Augmentation that moves boxes with the image: torchvision transforms v2 on ``tv_tensors``.

The cached image is a uint8 tensor whose longer side is the input size (``Preprocessing`` with
``crop_mode='border'``, ``crop_pct=1``); its boxes are ``tv_tensors.BoundingBoxes`` in XYXY pixels
of that image. Every preset ends with ``SanitizeBoundingBoxes`` (boxes that left the image or
shrank below a pixel are dropped with their labels) and a float conversion to [0, 1]: torchvision's
detectors normalise with the backbone's mean/std themselves.

Presets (``augment.preset``):

* ``none``: nothing but the conversion;
* ``light``: horizontal flip and scale/shift jitter (``RandomAffine`` without rotation, so boxes stay
  tight);
* ``medium``: light + photometric distortion (SSD's), zoom out (the image shrunk on a larger
  mean-coloured canvas: more small objects) and an IoU crop (zoom in around objects, SSD's);
* ``strong``: medium, with both applied more often and a wider scale range.
"""

from __future__ import annotations

from typing import Any, Callable

from headstart._validation import check_choice

__all__ = ["BOX_PRESETS", "build_box_transform", "resolve_box_preset"]

BOX_PRESETS = ("none", "light", "medium", "strong")


def resolve_box_preset(preset: str, n_train: int) -> str:
    """``auto``: ``light``. On the detection benchmark (12 epochs, 240 images) the best recipe on
    val used it; ``medium``'s zoom out and IoU crop pay off over longer schedules, if at all, and
    were not measured better there (BENCHMARKS.md, "Detection")."""
    if preset != "auto":
        return check_choice("augment.preset", preset, BOX_PRESETS)
    return "light"


def build_box_transform(preset: str, *, hflip: float = 0.5, zoom: float = 0.2, shift: float = 0.1,
                        fill: tuple[int, int, int] = (124, 116, 104), train: bool = True) -> Callable:
    """``(image uint8 CHW, target {'boxes': BoundingBoxes, 'labels': ...})`` -> the same, augmented,
    with the image as float in [0, 1]. ``fill``: the canvas colour of zoom-out and shifts (the
    backbone's mean in 0-255, so padding looks like 'nothing' after normalisation)."""
    import torch
    from torchvision.transforms import v2

    check_choice("augment.preset", preset, BOX_PRESETS)
    steps: list[Any] = []
    if train and preset != "none":
        if hflip > 0:
            steps.append(v2.RandomHorizontalFlip(hflip))
        scale = (1 - zoom, 1 + zoom) if preset != "strong" else (1 - 2 * zoom, 1 + 2 * zoom)
        steps.append(v2.RandomAffine(degrees=0, translate=(shift, shift), scale=scale, fill=list(fill)))
        if preset in ("medium", "strong"):
            p = 0.3 if preset == "medium" else 0.5
            steps.append(v2.RandomPhotometricDistort(p=0.5))
            steps.append(v2.RandomZoomOut(fill=list(fill), side_range=(1.0, 2.0), p=p))
            steps.append(v2.RandomApply([v2.RandomIoUCrop()], p=p))
        steps.append(v2.ClampBoundingBoxes())
        steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)
