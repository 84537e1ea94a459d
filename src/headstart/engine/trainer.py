"""The training loop: runs a plan of stages for a task (see :mod:`headstart.engine.protocol`).

Reproducibility is by construction: each epoch's shuffling, augmentation and dropout are drawn
from a seed derived from (seed, stage, epoch), and the LR schedule is a function of the step count.
So a run resumed from its last checkpoint repeats exactly what the uninterrupted run would have
done, without saving RNG states. The checkpoint holds everything else that changes while training:
the weights, the optimiser, the grad scaler (fp16 on CUDA), the moving average of the weights
(``train.ema_decay``, :mod:`headstart.engine.ema`) and the state of every callback.

On several processes (:mod:`headstart.engine.distributed`), a stage that trains through the
loaders runs the model wrapped in ``DistributedDataParallel`` (created per stage, after the task
has chosen what trains; optional SyncBatchNorm with ``train.sync_bn``). Each rank's loader yields
its share of the global batches, the epoch's loss and sums are added up over the ranks, and the
validation metrics, gathered by the task, are the same on every rank, so early stopping and the
best checkpoint decide alike everywhere; a callback's stop (a tune deadline) is rank 0's. A stage
on cached features runs whole on every rank (the features are gathered). Only rank 0 writes
checkpoints; on resume rank 0 reads them and broadcasts them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from headstart._io import atomic_write
from headstart.config import TrainConfig
from headstart.engine import distributed
from headstart.engine.callbacks import Callback
from headstart.engine.device import DeviceSettings
from headstart.engine.ema import averaged, stage_ema
from headstart.engine.metrics import check_monitor, is_better
from headstart.engine.protocol import StepOutput, TrainableTask
from headstart.engine.stages import Stage
from headstart.errors import ConfigError, HeadstartError

__all__ = ["Trainer", "TrainState", "TrainingDiverged", "epoch_seed", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 2  # 2: grad scaler and callback states saved; early stopping's counters moved to its state


class TrainingDiverged(HeadstartError, FloatingPointError):
    """The loss became NaN or infinite."""


def epoch_seed(seed: int, stage_index: int, epoch: int) -> int:
    return (seed * 1_000_003 + stage_index * 10_007 + epoch) % (2**63 - 1)


@dataclass
class TrainState:
    stage_index: int = 0
    epoch: int = 0  # epochs completed in the current stage
    step: int = 0  # optimiser steps in the current stage (drives the LR schedule)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    stop_stage: bool = False  # set by a callback (early stopping, a tune deadline) to end the stage

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        return cls(**data)


def _callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """A stable key per callback for the checkpoint: its class name, numbered when repeated."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__qualname__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


class Trainer:
    """Fits ``task.model`` through ``stages``, keeping the best weights on ``cfg.monitor``.

    ``task`` answers the task-specific questions (see :class:`TrainableTask`); ``callbacks`` see
    every stage, epoch and batch, and a callback with ``state_dict``/``load_state_dict`` has its
    state saved in the checkpoint. ``checkpoint_dir`` receives ``last.pt`` after every epoch and
    ``best.pt`` when the monitored metric improves, both written atomically.
    """

    def __init__(
        self,
        task: TrainableTask,
        stages: Sequence[Stage],
        cfg: TrainConfig,
        *,
        dev: DeviceSettings,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        task_name: str = "this",
    ):
        self.task = task
        # 'auto': the task's default, the first metric of its table
        monitor = next(iter(task.metric_directions)) if cfg.monitor == "auto" else cfg.monitor
        self.monitor = check_monitor(monitor, task.metric_directions, task=task_name)
        self.direction = task.metric_directions[self.monitor]
        self.world = distributed.world()
        if self.world.is_distributed and getattr(cfg, "sync_bn", False):
            if dev.device.type != "cuda":
                raise ConfigError("The 'train.sync_bn' parameter needs CUDA devices (SyncBatchNorm runs on GPUs"
                                  " only); drop --sync-bn on the CPU.")
            task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
        self.task.model = task.model.to(dev.device)
        if dev.channels_last:
            self.task.model = self.task.model.to(memory_format=torch.channels_last)
        self.stages = list(stages)
        self.cfg = cfg
        self.dev = dev
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.state = TrainState()
        self._best_state: dict[str, torch.Tensor] | None = None
        self._pending: dict[str, Any] = {}
        self._unread: tuple[torch.Tensor, int, int] | None = None  # (loss, images, step) the host has not read yet
        self._epoch_loss = 0.0
        self.optimizer = None
        self.scheduler = None
        self.scaler = None
        self._ddp: torch.nn.Module | None = None  # the DistributedDataParallel wrapper of this stage
        self.ema = None  # the stage's timm ModelEmaV3 (train.ema_decay): validated and kept as the best

    @property
    def model(self) -> torch.nn.Module:
        return self.task.model

    # ------------------------------------------------------------------ public
    def fit(self, resume: bool = False) -> TrainState:
        if resume:
            self._load_checkpoint()
        while self.state.stage_index < len(self.stages):
            stage = self.stages[self.state.stage_index]
            self._call("on_stage_start", stage)
            self._setup_optimizer(stage, restore=resume and self.state.epoch > 0)
            resume = False
            while self.state.epoch < stage.epochs and not self.state.stop_stage:
                row = self._run_epoch(stage)
                self._call("on_epoch_end", row)
                if self.world.is_distributed:  # one decision for all ranks (a deadline is rank 0's clock)
                    self.state.stop_stage = distributed.broadcast_object(self.state.stop_stage)
                self._track_best(row)
                self._save_checkpoint()
            self._finish_stage(stage)
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self._call("on_fit_end")
        return self.state

    # ------------------------------------------------------------------ stages
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _setup_optimizer(self, stage: Stage, restore: bool) -> None:
        from timm.optim import create_optimizer_v2
        from timm.scheduler import CosineLRScheduler

        cfg = self.cfg
        target = self.task.setup_stage(stage, self.stages[: self.state.stage_index])
        kwargs: dict[str, Any] = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
        layer_decay = cfg.layer_decay if isinstance(target, torch.nn.Module) and target is self.model else None
        self.optimizer = create_optimizer_v2(
            target, opt=cfg.optimizer, lr=stage.lr, weight_decay=cfg.weight_decay, layer_decay=layer_decay, **kwargs
        )
        steps_per_epoch = self.task.steps_per_epoch(stage)
        total = max(1, stage.epochs * steps_per_epoch)
        warmup = 0 if stage.on_features else min(int(cfg.warmup_epochs * steps_per_epoch), total // 2)
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=total,
            lr_min=stage.lr * cfg.min_lr_ratio,
            warmup_t=warmup,
            warmup_lr_init=stage.lr * 0.01,
            warmup_prefix=True,
            t_in_epochs=False,
        )
        self.scaler = torch.amp.GradScaler(self.dev.device.type) if self.dev.needs_grad_scaler() and not stage.on_features else None
        self._wrap(stage)
        self.ema = stage_ema(self.model, self.cfg.ema_decay, stage)
        if restore:
            if self._pending.get("optimizer") is not None:
                self.optimizer.load_state_dict(self._pending["optimizer"])
            if self.ema is not None and self._pending.get("ema") is not None:
                self.ema.module.load_state_dict(self._pending["ema"])
            if self.scaler is not None and self._pending.get("scaler") is not None:
                self.scaler.load_state_dict(self._pending["scaler"])
        self._pending = {}

    def _wrap(self, stage: Stage) -> None:
        """A new DistributedDataParallel wrapper for a stage through the backbone on several
        processes: DDP records which parameters train when it is built, and it broadcasts rank 0's
        weights (a resumed or re-loaded model is the same on every rank)."""
        import gc

        if self._ddp is not None:
            self._ddp = None
            gc.collect()  # the previous stage's wrapper and its gradient hooks go before the new one comes
        if self.world.is_distributed and not stage.on_features:
            from torch.nn.parallel import DistributedDataParallel

            self._ddp = DistributedDataParallel(self.model, device_ids=[self.dev.device.index] if self.dev.is_cuda else None)

    def _finish_stage(self, stage: Stage) -> None:
        # Later stages start from the best weights so far (lp-ft fine-tunes the best probe).
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self._call("on_stage_end", stage)
        self.task.end_stage(stage)
        self.state.stage_index += 1
        self.state.epoch = 0
        self.state.step = 0
        self.state.stop_stage = False
        self._save_checkpoint()

    # ------------------------------------------------------------------ epochs
    def _run_epoch(self, stage: Stage) -> dict[str, Any]:
        seed = epoch_seed(self.cfg.seed, self.state.stage_index, self.state.epoch)
        # each rank augments (and drops out) with a stream of its own; rank 0's is the single process's
        torch.manual_seed((seed + (0 if stage.on_features else self.world.rank)) % (2**63 - 1))
        self._unread = None
        t0 = time.perf_counter()
        train = self._train_epoch(stage, seed)
        train_time = time.perf_counter() - t0
        with averaged(self.task, self.ema):
            val = self.task.validate(stage)
        live_is_better = False
        if self.ema is not None and self.state.epoch + 1 == stage.epochs:
            # a stage's last epoch scores the live weights too and keeps the better: the average lags
            # behind them when a stage is short (a few hundred steps), and is level at the end of a long one
            live = self.task.validate(stage)
            live_is_better = is_better(live[self.monitor], val[self.monitor], self.direction)
            val = live if live_is_better else val
        elapsed = time.perf_counter() - t0
        self.state.epoch += 1
        return {
            "epoch": len(self.state.history) + 1,
            "stage": stage.name,
            "stage_epoch": self.state.epoch,
            **{k: v for k, v in train.items() if k != "images"},
            **val,
            **({"weights": "live" if live_is_better else "average"} if self.ema is not None else {}),
            "lr": max(g["lr"] for g in self.optimizer.param_groups),
            "time": elapsed,  # the whole epoch, validation included
            "images_per_s": train["images"] / max(train_time, 1e-9),  # training pass only
        }

    def _train_epoch(self, stage: Stage, seed: int) -> dict[str, Any]:
        plain = self.task.model
        if self._ddp is not None:  # the training pass goes through DDP; validation and checkpoints do not
            self.task.model = self._ddp
        try:
            return self._train_pass(stage, seed)
        finally:
            self.task.model = plain

    def _train_pass(self, stage: Stage, seed: int) -> dict[str, Any]:
        batches = self.task.train_batches(stage, seed)
        self._call("on_epoch_start", stage, len(batches))
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self._epoch_loss, seen = 0.0, 0
        sums: dict[str, torch.Tensor] = {}  # device tensors, read once at the end of the epoch
        for batch in batches:
            self.scheduler.step_update(self.state.step)
            if stage.on_features:
                out = self.task.training_step(stage, batch)
            else:
                with self.dev.autocast():
                    out = self.task.training_step(stage, batch)
            loss = self._total_loss(out, sums)
            self._optimizer_step(loss, params, out.num_images)
            for name, value in out.sums.items():
                sums[name] = sums[name] + value if name in sums else value
            seen += out.num_images
        self._settle()
        totals = {name: float(value) for name, value in sums.items()}
        if self._ddp is not None:  # every rank saw its share of the epoch: add them up
            names = sorted(totals)
            loss, seen, *values = distributed.all_reduce_sum([self._epoch_loss, seen, *(totals[k] for k in names)])
            self._epoch_loss, seen, totals = loss, int(round(seen)), dict(zip(names, values))
        row: dict[str, Any] = {"train_loss": self._epoch_loss / max(seen, 1)}
        for name, value in totals.items():
            row[f"train_{name}"] = value / max(seen, 1)
        row["images"] = seen
        return row

    @staticmethod
    def _total_loss(out: StepOutput, sums: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss to minimise; a dict of losses is summed, and each part's image-weighted sum goes
        into ``sums`` as ``loss_<name>`` (history: ``train_loss_<name>``)."""
        if isinstance(out.loss, Mapping):
            parts = dict(out.loss)
            for name, value in parts.items():
                key = f"loss_{name.removeprefix('loss_')}"
                part = value.detach().float() * out.num_images
                sums[key] = sums[key] + part if key in sums else part
            return sum(parts.values())
        return out.loss

    def _optimizer_step(self, loss: torch.Tensor, params, num_images: int) -> None:
        """Backward and optimiser step without waiting for the device.

        The host reads a step's loss (for the NaN check, the epoch's mean loss and the callbacks)
        only after the next step is queued, in :meth:`_settle`: reading it at once would stall
        the CUDA queue at every step. On the CPU nothing changes but the order of the reads."""
        self._settle()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model, step=self.state.step + 1)
        self._unread = (loss.detach(), num_images, self.state.step)
        self.state.step += 1

    def _settle(self) -> None:
        """Read the loss of the last queued step: stop on NaN/inf, add it to the epoch's loss and
        tell the callbacks."""
        if self._unread is None:
            return
        loss, n, step = self._unread
        self._unread = None
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"The training loss became {value} at step {step} of stage "
                f"{self.stages[self.state.stage_index].name!r}. Lower the learning rate (train.lr) "
                "or enable gradient clipping (train.grad_clip=1.0)."
            )
        self._epoch_loss += value * n
        self._call("on_batch_end", n, value)

    # ------------------------------------------------------------------ best and checkpoints
    def _track_best(self, row: dict[str, Any]) -> None:
        self.state.history.append(row)
        value = row[self.monitor]
        if is_better(value, self.state.best_value, self.direction):
            self.state.best_value = value
            self.state.best_epoch = row["epoch"]
            source = self.ema.module if row.get("weights") == "average" else self.model
            self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in source.state_dict().items()}
            if self.checkpoint_dir is not None and self.world.is_main:
                atomic_write(self.checkpoint_dir / "best.pt", lambda tmp: torch.save(self._best_state, tmp))

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is None or not self.world.is_main:
            return
        callbacks = {key: cb.state_dict() for key, cb in zip(_callback_keys(self.callbacks), self.callbacks)
                     if hasattr(cb, "state_dict")}
        payload = {
            "format": CHECKPOINT_FORMAT,
            "state": self.state.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "callbacks": callbacks,
        }
        atomic_write(self.checkpoint_dir / "last.pt", lambda tmp: torch.save(payload, tmp))

    def _load_checkpoint(self) -> None:
        # rank 0 reads the checkpoint and every rank gets it: other machines need not see the folder
        payload, best = distributed.on_main(self._read_checkpoint)
        self.state = TrainState.from_dict(payload["state"])
        self.model.load_state_dict(payload["model"])
        self._pending = {"optimizer": payload["optimizer"], "scaler": payload.get("scaler"), "ema": payload.get("ema")}
        saved = payload.get("callbacks") or {}
        for key, cb in zip(_callback_keys(self.callbacks), self.callbacks):
            if hasattr(cb, "load_state_dict") and key in saved:
                cb.load_state_dict(saved[key])
        if best is not None:
            self._best_state = best

    def _read_checkpoint(self) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
        path = self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None
        if path is None or not path.is_file():
            raise HeadstartError(
                f"Cannot resume: no checkpoint at {str(path)!r}. Start the run without --resume."
            )
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise HeadstartError(
                f"Cannot resume from {str(path)!r}: checkpoint format {payload.get('format')!r} is not this"
                f" headstart's ({CHECKPOINT_FORMAT}); it was written by another version. Start the run again"
                " in a new --out folder."
            )
        best = self.checkpoint_dir / "best.pt"
        return payload, torch.load(best, map_location="cpu", weights_only=True) if best.is_file() else None
