"""What the engine asks of a task. A task object is bound to one run: it holds the model, the data
loaders and the loss, and answers for each stage.

The interface is small on purpose (the way torchvision's detection models take targets and return
a dict of losses, and Lightning's module gives ``training_step``): a classification task returns
one loss, a detection task returns torchvision's dict of losses, and the engine neither knows nor
cares which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence, Sized, Union

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from headstart.engine.stages import Stage

__all__ = ["StepOutput", "TrainableTask", "Batches"]


@dataclass
class StepOutput:
    """One training step's result.

    ``loss``: the tensor to minimise, or a dict of named losses (summed for the backward pass;
    each one's epoch mean goes into history as ``train_loss_<name>``). ``num_images``: the images
    in the batch. ``sums``: per-batch sums of training statistics, as device tensors (for example
    ``{"accuracy": correct}``); the engine adds them up without waiting for the device and writes
    ``train_<name> = sum / images`` to history."""

    loss: Union["torch.Tensor", Mapping[str, "torch.Tensor"]]
    num_images: int
    sums: dict[str, "torch.Tensor"] = field(default_factory=dict)


class Batches(Sized, Iterable[Any], Protocol):
    """A stage's batches for one epoch: a DataLoader, or anything with ``len`` and ``iter``."""


class TrainableTask(Protocol):
    """The engine's view of a task bound to one run."""

    model: "torch.nn.Module"
    #: validation metric -> 'min' or 'max' (see :mod:`headstart.engine.metrics`); the first one is
    #: the task's default for ``train.monitor: auto``
    metric_directions: Mapping[str, str]
    #: (history key, short label) pairs shown on each epoch's progress line
    progress_columns: Sequence[tuple[str, str]]

    def setup_stage(self, stage: "Stage", done: Sequence["Stage"]) -> Any:
        """Freeze and unfreeze for ``stage`` (``done``: the stages already finished) and return
        what the optimiser trains: a module (timm's optimizer factory then applies weight-decay
        rules and layer decay) or a list of parameter-group dicts."""

    def steps_per_epoch(self, stage: "Stage") -> int: ...

    def train_batches(self, stage: "Stage", seed: int) -> Batches:
        """This epoch's training batches, shuffled and augmented as a function of ``seed``; puts
        the model in the stage's training mode (e.g. BatchNorm statistics frozen)."""

    def training_step(self, stage: "Stage", batch: Any) -> StepOutput: ...

    def validate(self, stage: "Stage") -> dict[str, float]:
        """The validation metrics after an epoch: every key of ``metric_directions``."""

    def end_stage(self, stage: "Stage") -> None:
        """Drop what the stage kept (cached features, ...)."""
