"""Every ``auto`` of a detection config, resolved from the data and the device in one place; fit
writes the result into config.yaml (so the file says what ran) and prints why.

The rules (constants below), and where they come from:

* detector: ``fcos`` on a CPU (anchor-free: nothing to mis-size, and the cheapest of the three per
  step here), ``fasterrcnn`` on a GPU (what users ask for first, and the most accurate of the three
  on our benchmark once steps are cheap); see BENCHMARKS.md, "Detection".
* input size: the training images' median longer side, rounded up to a multiple of 32, between 256
  and 512 on a CPU (640 on a GPU): detecting at more than the images' own resolution adds cost and
  no detail.
* batch size 8 on a CPU, 16 on a GPU; AdamW at 2e-4 x batch/8 for the heads and the pyramid, with
  the backbone at ``detect.backbone_lr_ratio`` (0.1) of it once it trains.
* epochs: enough optimiser steps for heads that start from random weights -- about 360 -- at
  least 8 and at most 60 epochs in all, the first fifth of them (at least one) on the heads alone.
  On the benchmark (240 training images, 30 steps an epoch: 2 + 10 epochs) this default beat the
  best tutorial-style torchvision loop of the same length (BENCHMARKS.md, "Detection").
* augmentation: ``medium`` up to 5,000 training images, ``light`` above.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from headstart.config import FitConfig

__all__ = ["resolve_choices", "auto_detector", "auto_image_size"]

TARGET_STEPS = 360
MIN_EPOCHS, MAX_EPOCHS = 8, 60
HEAD_FRACTION = 0.2


def auto_detector(device_type: str) -> tuple[str, str]:
    if device_type == "cuda":
        return "fasterrcnn", "fasterrcnn on a GPU (the most accurate of the three when steps are cheap)"
    return "fcos", f"fcos on {device_type} (anchor-free, and the cheapest per step of the three here)"


def auto_image_size(samples: Sequence, device_type: str) -> int:
    longer = [max(s.width, s.height) for s in samples] or [320]
    size = 32 * math.ceil(statistics.median(longer) / 32)
    return int(min(max(size, 256), 640 if device_type == "cuda" else 512))


def resolve_choices(cfg: FitConfig, train_samples: Sequence, *, device_type: str) -> tuple[FitConfig, list[str]]:
    """``cfg`` with the detector, input size, batch size, LR, epochs, head epochs, strategy and
    augmentation preset decided, and the reasons to print."""
    from headstart.data.box_transforms import resolve_box_preset

    reasons: list[str] = []
    d, t, m = cfg.detect, cfg.train, cfg.model
    detector = d.detector
    if detector == "auto":
        detector, why = auto_detector(device_type)
        reasons.append(f"detector auto: {why}")
    image_size = m.image_size
    if image_size is None:
        image_size = auto_image_size(train_samples, device_type)
        reasons.append(f"input size {image_size}px: the training images' median longer side (256-512 on a CPU)")
    batch_size = t.batch_size or (16 if device_type == "cuda" else 8)
    lr = t.lr if t.lr is not None else 2e-4 * batch_size / 8
    n = len(train_samples)
    epochs, head_epochs = t.epochs, d.head_epochs
    if epochs is None:
        steps = max(1, math.ceil(n / batch_size))
        total = int(min(max(math.ceil(TARGET_STEPS / steps), MIN_EPOCHS), MAX_EPOCHS))
        head_epochs = head_epochs or max(1, round(total * HEAD_FRACTION))
        epochs = max(1, total - head_epochs)
        reasons.append(f"{head_epochs} + {epochs} epochs: about {TARGET_STEPS} optimiser steps at {steps} per epoch")
    head_epochs = head_epochs or max(1, round(epochs * HEAD_FRACTION))
    strategy = "head-ft" if t.strategy == "auto" else t.strategy
    preset = resolve_box_preset(cfg.augment.preset, n)
    update: dict[str, Any] = {
        "detect": d.model_copy(update={"detector": detector, "head_epochs": head_epochs}),
        "model": m.model_copy(update={"image_size": image_size}),
        "train": t.model_copy(update={"batch_size": batch_size, "lr": lr, "epochs": epochs, "strategy": strategy}),
        "augment": cfg.augment.model_copy(update={"preset": preset}),
    }
    return cfg.model_copy(update=update), reasons
