"""A moving average of the weights (``train.ema_decay``), validated and kept as the best.

timm's ModelEmaV3 keeps the average and its decay warm-up; what is headstart's is when one starts
(each stage through the backbone, from the weights the stage starts with) and that validation,
early stopping and the best checkpoint see the average instead of the live weights; a stage's last
epoch scores both and keeps the better (the trainer's ``_run_epoch``: on a short stage the average
lags behind the live weights)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from headstart.engine.stages import Stage

__all__ = ["stage_ema", "averaged"]

#: warm-up of the decay, 1 - (1 + step)^-power: timm's value for runs of under ~10k steps; a stage
#: of 1,000 steps ends at ~0.994 (an average over its last ~150 steps), a long one at the cap.
WARMUP_POWER = 0.75


def stage_ema(model: torch.nn.Module, decay: float | None, stage: Stage):
    """A ModelEmaV3 of ``model`` for ``stage``; None when ``decay`` is 0/None or the stage trains on
    cached features (a linear probe: a head of seconds, nothing to average)."""
    if not decay or stage.on_features:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=WARMUP_POWER)


@contextmanager
def averaged(task: Any, ema) -> Iterator[None]:
    """``task.model`` is the average inside the block (when there is one)."""
    if ema is None:
        yield
        return
    live, task.model = task.model, ema.module
    try:
        yield
    finally:
        task.model = live
