"""Callbacks of the training loop, in the manner of Lightning's: each concern is one small class.

* :class:`StageFreezer` freezes or unfreezes the backbone as each stage starts (Lightning's
  ``BaseFinetuning`` idea), and keeps BatchNorm statistics frozen where the backbone is frozen.
* :class:`EarlyStopping` watches the validation metric.
* :class:`ProgressBar` shows images/s and ETA, and prints a Keras-like line per epoch.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from headstart.train.loop import Trainer
    from headstart.train.strategies import Stage

__all__ = ["Callback", "StageFreezer", "EarlyStopping", "ProgressBar", "is_better"]


def is_better(monitor: str, value: float, best: float | None) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best if monitor == "val_loss" else value > best


class Callback:
    def on_stage_start(self, trainer: "Trainer", stage: "Stage") -> None: ...
    def on_epoch_start(self, trainer: "Trainer", stage: "Stage", num_batches: int) -> None: ...
    def on_batch_end(self, trainer: "Trainer", num_images: int, loss: float) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


def _set_batchnorm_eval(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


class StageFreezer(Callback):
    """Probe stages train the classifier only; fine-tuning stages train everything.

    ``freeze_bn`` keeps BatchNorm running statistics fixed while fine-tuning too (useful with tiny
    batches, where batch statistics are noisy)."""

    def __init__(self, freeze_bn: bool = False):
        self.freeze_bn = freeze_bn

    def on_stage_start(self, trainer, stage):
        model = trainer.model
        head = model.get_classifier()
        head_ids = {id(p) for p in head.parameters()}
        for p in model.parameters():
            p.requires_grad_(not stage.on_features or id(p) in head_ids)

    def on_epoch_start(self, trainer, stage, num_batches):
        trainer.model.train()
        if stage.on_features or self.freeze_bn:
            _set_batchnorm_eval(trainer.model)


class EarlyStopping(Callback):
    """Stops a stage when ``monitor`` has not improved for ``patience`` epochs. The counter lives in
    the trainer's state so that it survives a resume."""

    def __init__(self, monitor: str, patience: int | None):
        self.monitor = monitor
        self.patience = patience

    def on_stage_start(self, trainer, stage):
        if trainer.state.epoch == 0:
            trainer.state.stage_best = None
            trainer.state.bad_epochs = 0

    def on_epoch_end(self, trainer, row):
        state = trainer.state
        value = row[self.monitor]
        if is_better(self.monitor, value, state.stage_best):
            state.stage_best = value
            state.bad_epochs = 0
        else:
            state.bad_epochs += 1
        if self.patience is not None and state.bad_epochs >= self.patience:
            state.stop_stage = True


class ProgressBar(Callback):
    """A rich progress bar over the batches of each epoch (images/s, ETA) and one line per epoch."""

    def __init__(self, console=None, enabled: bool = True):
        self.enabled = enabled
        self.console = console
        self._progress = None
        self._task = None
        self._images = 0
        self._t0 = 0.0

    def _ensure(self):
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.console = self.console or Console(stderr=True)
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[speed]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()

    def on_epoch_start(self, trainer, stage, num_batches):
        if not self.enabled:
            return
        self._ensure()
        self._images, self._t0 = 0, time.perf_counter()
        desc = f"{stage.name} {trainer.state.epoch + 1}/{stage.epochs}"
        self._task = self._progress.add_task(desc, total=num_batches, speed="")

    def on_batch_end(self, trainer, num_images, loss):
        if not self.enabled or self._task is None:
            return
        self._images += num_images
        rate = self._images / max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, advance=1, speed=f"{rate:,.0f} img/s loss {loss:.4f}")

    def on_epoch_end(self, trainer, row):
        if not self.enabled:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self.console.print(
            f"epoch {row['epoch']:>3} [{row['stage']}] "
            f"loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
            f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} "
            f"val_bal_acc {row['val_balanced_accuracy']:.4f} | lr {row['lr']:.2e} "
            f"| {row['time']:.1f}s {row['images_per_s']:,.0f} img/s",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    def on_fit_end(self, trainer):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
