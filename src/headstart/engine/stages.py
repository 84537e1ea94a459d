"""A fine-tuning plan is a list of stages; each trains some part of the model for some epochs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Stage"]


@dataclass(frozen=True)
class Stage:
    """``name`` is what history.csv and the progress lines call it (``probe``, ``finetune``, ...).

    ``on_features``: the stage trains a head on features computed once by the frozen backbone (a
    linear probe); the engine then skips LR warmup, autocast and the grad scaler, which only pay
    off when the backbone runs. Which parameters a stage trains is the task's decision
    (:meth:`headstart.engine.protocol.TrainableTask.setup_stage`)."""

    name: str
    epochs: int
    lr: float
    on_features: bool = False
