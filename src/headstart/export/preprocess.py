"""Image -> the uint8 crop an exported model takes, with numpy and Pillow only (no torch).

This is the light-install twin of :func:`headstart.data.transforms.load_resized` followed by the
crop of :func:`~headstart.data.transforms.build_eval_transform`: the same decoding (:func:`open_rgb`,
including the JPEG draft size), the same Pillow resize with the model's interpolation and the same
size arithmetic (imported from the transforms module, not copied), and the crop written with
torchvision's rounding. Scaling and normalisation are inside the exported graphs.
``tests/export`` checks that both paths give identical pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from headstart.data.decode import open_rgb
from headstart.data.transforms import Preprocessing, _pil_resample, _resized_size

__all__ = ["prepare_image", "load_image_array", "center_crop", "preprocessing_from_metadata"]


def preprocessing_from_metadata(meta: dict) -> Preprocessing:
    return Preprocessing.from_dict(meta["preprocessing"])


def center_crop(array: np.ndarray, size: int, fill: tuple[int, int, int] | None = None) -> np.ndarray:
    """Centre crop of an HWC array to ``size`` x ``size``; where the image is smaller it is padded
    with ``fill`` (timm's 'border' mode) or zeros (what torchvision's ``center_crop`` pads with)."""
    height, width = array.shape[:2]
    if height < size or width < size:
        canvas = np.empty((max(height, size), max(width, size), array.shape[2]), dtype=array.dtype)
        canvas[:] = np.asarray(fill if fill is not None else (0, 0, 0), dtype=array.dtype)
        top, left = (canvas.shape[0] - height) // 2, (canvas.shape[1] - width) // 2
        canvas[top : top + height, left : left + width] = array
        array, (height, width) = canvas, canvas.shape[:2]
    # torchvision: int(round((h - crop) / 2)), Python's round-half-to-even included.
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return array[top : top + size, left : left + size]


def prepare_image(image, pre: Preprocessing) -> np.ndarray:
    """An RGB Pillow image -> uint8 array ``(3, S, S)``, ``S = pre.input_size``."""
    target = _resized_size(image.width, image.height, pre)
    if target != image.size:
        image = image.resize(target, _pil_resample(pre.interpolation))
    array = np.asarray(image, dtype=np.uint8)
    fill = tuple(round(255 * m) for m in pre.mean) if pre.crop_mode == "border" else None
    crop = center_crop(array, pre.input_size, fill)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def load_image_array(path: str | Path, pre: Preprocessing) -> np.ndarray:
    """Decode ``path`` as training did and prepare it (see :func:`prepare_image`).

    Raises :class:`~headstart.errors.DataError` naming the file when it cannot be read.
    """
    # The same JPEG draft size as load_resized, so that both paths see identical pixels.
    return prepare_image(open_rgb(path, draft=2 * pre.resize_size), pre)
