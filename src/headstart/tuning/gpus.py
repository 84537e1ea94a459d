"""The GPU each local worker of ``headstart tune --workers N`` trains on."""

from __future__ import annotations

import os
from typing import Mapping

__all__ = ["worker_environment"]


def worker_environment(index: int, gpus: int, base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The environment of local worker ``index`` when this machine has ``gpus`` CUDA devices: with
    two or more, ``CUDA_VISIBLE_DEVICES`` names one of them (of those already visible, when the
    variable is set), worker ``i`` getting device ``i mod gpus``; so each trial trains on its own
    GPU as ``cuda`` (more workers than GPUs share them). None (inherit) with fewer than two."""
    base = dict(os.environ if base is None else base)
    if gpus < 2:
        return None
    visible = [s.strip() for s in base.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    ids = visible or [str(k) for k in range(gpus)]
    return {**base, "CUDA_VISIBLE_DEVICES": ids[index % len(ids)]}
