"""Callbacks of the training loop, in the manner of Lightning's: each concern is one small class.

* :class:`EarlyStopping` watches a validation metric, in the direction the task's metric table
  gives it; its counters are saved in the checkpoint.
* :class:`ProgressBar` shows images/s and ETA, and prints one line per epoch through the backbone;
  the cheap epochs of a stage on cached features (a linear probe) get one summary line.

A callback with ``state_dict()`` / ``load_state_dict()`` has its state saved in every checkpoint
and restored on resume.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from headstart.engine.metrics import is_better

if TYPE_CHECKING:  # pragma: no cover
    from headstart.engine.stages import Stage
    from headstart.engine.trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "ProgressBar"]


class Callback:
    def on_stage_start(self, trainer: "Trainer", stage: "Stage") -> None: ...
    def on_epoch_start(self, trainer: "Trainer", stage: "Stage", num_batches: int) -> None: ...
    def on_batch_end(self, trainer: "Trainer", num_images: int, loss: float) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None: ...
    def on_stage_end(self, trainer: "Trainer", stage: "Stage") -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


class EarlyStopping(Callback):
    """Stops a stage when ``monitor`` has not improved for ``patience`` epochs (None: never).
    Whether lower or higher is better comes from the task's metric table."""

    def __init__(self, monitor: str, patience: int | None):
        self.monitor = monitor
        self.patience = patience
        self.stage_best: float | None = None
        self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"stage_best": self.stage_best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage_best = state["stage_best"]
        self.bad_epochs = int(state["bad_epochs"])

    def on_stage_start(self, trainer, stage):
        if trainer.state.epoch == 0:  # a new stage (not one resumed half-way) starts counting afresh
            self.stage_best = None
            self.bad_epochs = 0

    def on_epoch_end(self, trainer, row):
        if self.monitor == "auto":
            self.monitor = trainer.monitor
        direction = trainer.task.metric_directions[self.monitor]
        if is_better(row[self.monitor], self.stage_best, direction):
            self.stage_best = row[self.monitor]
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs >= self.patience:
            trainer.state.stop_stage = True


class ProgressBar(Callback):
    """In a terminal, a rich progress bar over the batches of each epoch (images/s, ETA); in a
    terminal or a log, one line per epoch through the backbone with the task's progress columns.
    A stage on cached features (the linear probe: many epochs of a second or less) prints one line
    when it ends: its epochs, its best epoch and that epoch's metrics."""

    def __init__(self, console=None, enabled: bool = True):
        self.enabled = enabled
        self.console = console
        self._progress = None
        self._task = None
        self._images = 0
        self._t0 = 0.0
        self._stage_t0 = 0.0
        self._stage_rows: list[dict[str, Any]] = []

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

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def on_stage_start(self, trainer, stage):
        self._stage_t0 = time.perf_counter()
        self._stage_rows = []

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
        if trainer.stages[trainer.state.stage_index].on_features:
            self._stage_rows.append(row)
            return
        self._print(
            f"epoch {row['epoch']:>3} [{row['stage']}] {_columns(trainer, row)} | lr {row['lr']:.2e} "
            f"| {row['time']:.1f}s {row['images_per_s']:,.0f} img/s"
        )

    def on_stage_end(self, trainer, stage):
        if not self.enabled or not stage.on_features or not self._stage_rows:
            return
        rows = self._stage_rows
        best = rows[0]
        for row in rows[1:]:
            if is_better(row[trainer.monitor], best[trainer.monitor], trainer.direction):
                best = row
        self._print(
            f"{stage.name}: {len(rows)} epochs on cached features in {time.perf_counter() - self._stage_t0:.1f}s;"
            f" best epoch {best['stage_epoch']}: {_columns(trainer, best)}"
        )

    def on_fit_end(self, trainer):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _columns(trainer, row: dict[str, Any]) -> str:
    """``loss 0.4 acc 0.9 | val_loss 0.3 ...``: the training loss, then the task's columns, with a
    bar before the first validation column."""
    parts = [f"loss {row['train_loss']:.4f}"]
    bar = False
    for key, label in trainer.task.progress_columns:
        if key in row:
            if key.startswith("val_") and not bar:
                parts.append("|")
                bar = True
            parts.append(f"{label} {row[key]:.4f}")
    return " ".join(parts)
