"""Which way a metric is better: the one rule that early stopping, best-model tracking, pruning and
tune's study direction all read. Each task declares its table of validation metrics
(``{"val_loss": "min", "val_accuracy": "max", ...}``) and the engine looks directions up there."""

from __future__ import annotations

import math
from typing import Mapping

from headstart._validation import did_you_mean
from headstart.errors import ConfigError

__all__ = ["MIN", "MAX", "is_better", "check_monitor"]

MIN, MAX = "min", "max"


def is_better(value: float | None, best: float | None, direction: str) -> bool:
    """``value`` improves on ``best`` (None: nothing yet) in ``direction`` ('min' or 'max');
    NaN never improves."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    if direction == MIN:
        return value < best
    if direction == MAX:
        return value > best
    raise ValueError(f"direction must be {MIN!r} or {MAX!r}, got {direction!r}")


def check_monitor(monitor: str, table: Mapping[str, str], *, task: str, param: str = "train.monitor") -> str:
    """``monitor`` if the task reports it, else a ConfigError listing the task's metrics."""
    if monitor in table:
        return monitor
    options = sorted(table)
    raise ConfigError(
        f"The {param!r} parameter must be one of the {task!r} task's validation metrics "
        f"{{{', '.join(repr(o) for o in options)}}}. Got {monitor!r}.{did_you_mean(str(monitor), options)}"
    )
