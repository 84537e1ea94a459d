"""Preprocessing matched to the pretrained model, and the augmentation presets.

A pretrained backbone only transfers well when it sees images prepared the way it was trained:
same input size, resize interpolation, crop fraction and normalisation. :class:`Preprocessing` reads
those from timm's ``pretrained_cfg`` and is saved with the run, so prediction reproduces them.

Why tensors rather than timm's ``create_transform`` on PIL images: the expensive part of loading an
image (JPEG decoding, resizing a multi-megapixel photo) is identical in every epoch. headstart does
it once in :func:`load_resized`, caches the result as a uint8 CHW tensor at the eval resize size
(see :class:`headstart.data.dataset.ImageCache`), and runs only the cheap random crop, flips and
normalisation on that tensor per epoch (``torchvision.transforms.v2``). The eval pipeline matches
timm's PIL pipeline (same Pillow resize, same centre crop), which ``tests/data`` checks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from headstart._validation import check_choice
from headstart.data.decode import open_rgb
from headstart.errors import ConfigError

__all__ = [
    "Preprocessing",
    "resolve_augment_preset",
    "build_eval_transform",
    "build_train_transform",
    "build_mix_collate",
    "load_resized",
    "AUGMENT_PRESETS",
]

AUGMENT_PRESETS = ("none", "light", "medium", "strong")


_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
_CROP_MODES = ("center", "squash", "border")


@dataclass(frozen=True)
class Preprocessing:
    """How images are prepared for one model: resize, crop and normalisation."""

    input_size: int
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_pct: float = 0.875
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        if not isinstance(self.input_size, int) or self.input_size < 1:
            raise ConfigError(f"Preprocessing input_size must be a positive int. Got {self.input_size!r}.")
        if not 0 < self.crop_pct <= 1:
            raise ConfigError(f"Preprocessing crop_pct must be in (0, 1]. Got {self.crop_pct!r}.")
        check_choice("interpolation", self.interpolation, _INTERPOLATIONS)
        check_choice("crop_mode", self.crop_mode, _CROP_MODES)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def from_model(cls, model: Any, image_size: int | None = None) -> "Preprocessing":
        """Read the preprocessing from a timm model (or its ``pretrained_cfg`` dict).

        ``image_size`` overrides the input size (for example ``model.image_size`` in the config);
        interpolation, crop fraction and normalisation stay the model's. timm's ``'random'``
        interpolation (a training-time option) becomes ``'bicubic'``.
        """
        from timm.data import resolve_data_config

        args = {"input_size": (3, image_size, image_size)} if image_size is not None else {}
        if isinstance(model, Mapping):
            cfg = resolve_data_config(args, pretrained_cfg=dict(model))
        else:
            cfg = resolve_data_config(args, model=model)
        height, width = cfg["input_size"][-2:]
        interpolation = cfg.get("interpolation") or "bicubic"
        if interpolation not in _INTERPOLATIONS:
            interpolation = "bicubic"
        return cls(
            # Non-square inputs are rare in timm; the larger side keeps all the detail.
            input_size=int(max(height, width)),
            interpolation=interpolation,
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            crop_pct=float(cfg.get("crop_pct") or 0.875),
            crop_mode=cfg.get("crop_mode") or "center",
        )

    @property
    def resize_size(self) -> int:
        """The eval resize before the centre crop: ``floor(input_size / crop_pct)``, as in timm."""
        return math.floor(self.input_size / self.crop_pct)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preprocessing":
        known = {
            k: data[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in data
        }
        if "input_size" not in known:
            raise ConfigError(f"A preprocessing record needs an 'input_size'. Got keys {sorted(data)}.")
        known["mean"] = tuple(known.get("mean", cls.mean))
        known["std"] = tuple(known.get("std", cls.std))
        return cls(**known)


def _pil_resample(name: str):
    from PIL import Image

    return {
        "nearest": Image.Resampling.NEAREST,
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "box": Image.Resampling.BOX,
        "hamming": Image.Resampling.HAMMING,
        "lanczos": Image.Resampling.LANCZOS,
    }[name]


def _tensor_interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    # Tensor kernels exist for nearest, bilinear and bicubic only; the others are close to bicubic.
    return {
        "nearest": InterpolationMode.NEAREST,
        "bilinear": InterpolationMode.BILINEAR,
    }.get(name, InterpolationMode.BICUBIC)


def _resized_size(width: int, height: int, pre: Preprocessing) -> tuple[int, int]:
    """Target (width, height) of the cached image, following torchvision/timm size arithmetic."""
    size = pre.resize_size
    if pre.crop_mode == "squash":
        return size, size
    if pre.crop_mode == "border":  # longest side to size; the crop then pads
        scale = size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    # center: shorter side to size, longer side int(size * long / short) (torchvision's rule)
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def resize_image(image, pre: Preprocessing):
    """A Pillow RGB image resized as the cache stores it for ``pre`` (see :func:`load_resized`)."""
    target = _resized_size(image.width, image.height, pre)
    if target != image.size:
        image = image.resize(target, _pil_resample(pre.interpolation))
    return image


def load_resized(path: str | Path, pre: Preprocessing):
    """Decode ``path`` to RGB and resize it for ``pre``; return a uint8 CHW tensor.

    Shorter side to ``pre.resize_size`` (``crop_mode='center'``), with Pillow's antialiased resize
    and the model's interpolation -- the same operation as timm's eval transform, so the centre crop
    of the result equals timm's preprocessing. This is what the image cache stores.
    """
    import numpy as np
    import torch

    # Let libjpeg skip most of the work for photos much larger than needed (see open_rgb).
    image = resize_image(open_rgb(path, draft=2 * pre.resize_size), pre)
    # HWC -> CHW in numpy: warm() calls this from a thread pool, and keeping torch kernels (and
    # their OpenMP thread teams) out of those threads leaves torch's own threading undisturbed.
    array = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(array)


class _CropOrPad:
    """Centre crop to ``size``, padding with ``fill`` where the image is smaller (timm's 'border')."""

    def __init__(self, size: int, fill: tuple[int, int, int]):
        self.size, self.fill = size, fill

    def __call__(self, image):
        import torch
        from torchvision.transforms.v2 import functional as F

        _, height, width = image.shape
        if height < self.size or width < self.size:
            canvas = torch.empty((image.shape[0], max(height, self.size), max(width, self.size)), dtype=image.dtype)
            canvas[:] = torch.tensor(self.fill, dtype=image.dtype).view(-1, 1, 1)
            top, left = (canvas.shape[1] - height) // 2, (canvas.shape[2] - width) // 2
            canvas[:, top : top + height, left : left + width] = image
            image = canvas
        return F.center_crop(image, [self.size, self.size])


def _mean_fill(pre: Preprocessing) -> tuple[int, int, int]:
    # Padding and affine borders filled with the mean colour become 0 after normalisation, the
    # least informative value, instead of black which is a strong (and misleading) signal.
    return tuple(round(255 * m) for m in pre.mean)  # type: ignore[return-value]


def _normalize(pre: Preprocessing) -> list:
    import torch
    from torchvision.transforms import v2

    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(pre.mean), std=list(pre.std))]


def build_eval_transform(pre: Preprocessing) -> Callable:
    """uint8 CHW tensor at ``pre.resize_size`` -> normalised float tensor ``(3, S, S)``, ``S =
    pre.input_size``: centre crop, scale to [0, 1], normalise."""
    from torchvision.transforms import v2

    if pre.crop_mode == "border":
        crop = _CropOrPad(pre.input_size, _mean_fill(pre))
    else:
        crop = v2.CenterCrop(pre.input_size)
    return v2.Compose([crop, *_normalize(pre)])


def resolve_augment_preset(preset: str, n_train: int) -> str:
    """The concrete preset for ``preset``; ``'auto'`` is ``'light'`` (random resized crop, flips
    where ``augment.hflip`` asks for them).

    Measured on the design datasets of ``benchmarks/defaults.py`` (500 training images each,
    BENCHMARKS.md "Classification defaults"): full fine-tuning with ``light`` (crops of at least
    60 % of the image) beat ``medium`` (+ rotation, shear, zoom, shift, brightness; the previous
    default under 1,000 images) by 2.1 points on textures at the same LR; rotations and shears of
    tiny upsampled images mostly blur them. ``'strong'`` is never chosen automatically: its
    RandAugment and mixup/cutmix pay off only over long schedules (hundreds of epochs in timm's
    recipes). ``n_train`` is checked and kept for rules that depend on the data size.
    """
    check_choice("augment.preset", preset, ("auto",) + AUGMENT_PRESETS)
    if preset != "auto":
        return preset
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 0:
        raise ConfigError(f"n_train must be a non-negative int. Got {n_train!r}.")
    return "light"


def build_train_transform(pre: Preprocessing, aug, preset: str) -> Callable:
    """uint8 CHW tensor (as cached) -> augmented, normalised float tensor ``(3, S, S)``.

    ``aug`` is an :class:`~headstart.config.AugmentConfig`; ``preset`` the resolved preset (see
    :func:`resolve_augment_preset`): ``none`` = the eval transform; ``light`` = random resized
    crop (``scale=(aug.scale_min, 1)``) + flips; ``medium`` = light + random affine (rotation,
    shift, zoom, shear) + brightness jitter; ``strong`` = light + TrivialAugmentWide or RandAugment
    + random erasing (mixup/cutmix act on batches: :func:`build_mix_collate`).
    """
    from torchvision.transforms import v2

    check_choice("preset", preset, AUGMENT_PRESETS)
    if preset == "none":
        return build_eval_transform(pre)
    interpolation = _tensor_interpolation(pre.interpolation)
    steps: list = [
        v2.RandomResizedCrop(pre.input_size, scale=(aug.scale_min, 1.0), interpolation=interpolation, antialias=True)
    ]
    if aug.hflip:  # None (auto) is resolved by the task before a transform is built
        steps.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.vflip > 0:
        steps.append(v2.RandomVerticalFlip(aug.vflip))
    if preset == "medium":
        if aug.rotation > 0 or aug.shift > 0 or aug.zoom > 0 or aug.shear > 0:
            steps.append(
                v2.RandomAffine(
                    degrees=aug.rotation,
                    translate=(aug.shift, aug.shift) if aug.shift > 0 else None,
                    scale=(1 - aug.zoom, 1 + aug.zoom) if aug.zoom > 0 else None,
                    shear=aug.shear if aug.shear > 0 else None,
                    interpolation=v2.InterpolationMode.BILINEAR,
                    fill=list(_mean_fill(pre)),
                )
            )
        if aug.brightness > 0:
            steps.append(v2.ColorJitter(brightness=aug.brightness))
    if preset == "strong":
        if aug.policy == "randaugment":
            steps.append(v2.RandAugment(magnitude=aug.magnitude, interpolation=v2.InterpolationMode.BILINEAR))
        else:
            steps.append(v2.TrivialAugmentWide(interpolation=v2.InterpolationMode.BILINEAR))
    steps += _normalize(pre)
    if preset == "strong" and aug.erasing > 0:
        # After normalisation, value 0 is the mean colour.
        steps.append(v2.RandomErasing(p=aug.erasing, value=0))
    return v2.Compose(steps)


class _MixCollate:
    """``default_collate`` then MixUp/CutMix: returns ``(images, soft targets (N, C) float)``."""

    def __init__(self, mix, num_classes: int):
        self.mix, self.num_classes = mix, num_classes

    def __call__(self, batch):
        from torch.utils.data import default_collate

        images, labels = default_collate(batch)
        return self.mix(images, labels)


def build_mix_collate(aug, num_classes: int, preset: str) -> Callable | None:
    """A DataLoader ``collate_fn`` applying MixUp or CutMix (chosen at random per batch) for the
    ``strong`` preset; ``None`` for other presets or when both alphas are 0.

    The targets it returns are soft, ``(N, num_classes)`` float rows summing to 1: the loss must
    accept class probabilities (``torch.nn.functional.cross_entropy`` does).
    """
    from torchvision.transforms import v2

    check_choice("preset", preset, AUGMENT_PRESETS)
    if preset != "strong":
        return None
    mixes = []
    if aug.mixup > 0:
        mixes.append(v2.MixUp(alpha=aug.mixup, num_classes=num_classes))
    if aug.cutmix > 0:
        mixes.append(v2.CutMix(alpha=aug.cutmix, num_classes=num_classes))
    if not mixes:
        return None
    mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
    return _MixCollate(mix, num_classes)
