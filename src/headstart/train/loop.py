"""The training loop: runs a plan of stages (see :mod:`headstart.train.strategies`).

Reproducibility is by construction: each epoch's shuffling, augmentation and dropout are drawn
from a seed derived from (seed, stage, epoch), and the LR schedule is a function of the step count.
So a run resumed from its last checkpoint repeats exactly what the uninterrupted run would have
done, without saving RNG states.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from headstart._io import atomic_write
from headstart.config import TrainConfig
from headstart.errors import HeadstartError
from headstart.train.callbacks import Callback, is_better
from headstart.train.device import DeviceSettings
from headstart.train.features import extract_features
from headstart.train.loss import ClassificationLoss, logits_to_probs
from headstart.train.strategies import Stage

__all__ = ["Trainer", "TrainState", "TrainingDiverged", "epoch_seed"]

CHECKPOINT_FORMAT = 1


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
    stage_best: float | None = None
    bad_epochs: int = 0
    stop_stage: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        return cls(**data)


def val_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    y_true = labels.numpy()
    y_pred = probs.argmax(1).numpy()
    return {
        "accuracy": float((y_pred == y_true).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


class Trainer:
    """Fits ``model`` through ``stages``.

    ``make_loader(kind, seed)`` returns a DataLoader for ``kind`` in ``'train'`` (augmented,
    shuffled with ``seed``), ``'train_eval'`` and ``'val'`` (evaluation transform, fixed order).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        stages: Sequence[Stage],
        cfg: TrainConfig,
        *,
        num_classes: int,
        dev: DeviceSettings,
        make_loader: Callable[..., Any],
        class_weights: torch.Tensor | None = None,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        feature_cache: Any = None,
    ):
        # feature_cache: optional headstart.select.feature_cache.BoundFeatureCache; the linear
        # probe then reads the pretrained backbone's features from disk instead of recomputing them
        self.feature_cache = feature_cache
        self.model = model.to(dev.device)
        if dev.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.stages = list(stages)
        self.cfg = cfg
        self.num_classes = num_classes
        self.dev = dev
        self.make_loader = make_loader
        self.loss_fn = ClassificationLoss(
            num_classes, label_smoothing=cfg.label_smoothing, class_weights=class_weights
        ).to(dev.device)
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.state = TrainState()
        self._features: tuple[torch.Tensor, ...] | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self.optimizer = None
        self.scheduler = None
        self.scaler = None

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
                self._track_best(row)
                self._save_checkpoint()
            self._finish_stage()
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self._call("on_fit_end")
        return self.state

    # ------------------------------------------------------------------ stages
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _head(self) -> torch.nn.Module:
        return self.model.get_classifier()

    def _setup_optimizer(self, stage: Stage, restore: bool) -> None:
        from timm.optim import create_optimizer_v2
        from timm.scheduler import CosineLRScheduler

        cfg = self.cfg
        target = self._head() if stage.on_features else self.model
        kwargs: dict[str, Any] = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
        layer_decay = None if stage.on_features else cfg.layer_decay
        self.optimizer = create_optimizer_v2(
            target, opt=cfg.optimizer, lr=stage.lr, weight_decay=cfg.weight_decay, layer_decay=layer_decay, **kwargs
        )
        steps_per_epoch = self._steps_per_epoch(stage)
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
        self.scaler = torch.amp.GradScaler("cuda") if self.dev.needs_grad_scaler() and not stage.on_features else None
        if restore and self._pending_optimizer_state is not None:
            self.optimizer.load_state_dict(self._pending_optimizer_state)
        self._pending_optimizer_state = None

    _pending_optimizer_state: dict[str, Any] | None = None
    _unread: tuple[torch.Tensor, int, int] | None = None  # (loss, images, step) the host has not read yet
    _epoch_loss: float = 0.0

    def _steps_per_epoch(self, stage: Stage) -> int:
        if stage.on_features:
            n = len(self._probe_features()[1])
            return math.ceil(n / self.cfg.batch_size)
        return len(self.make_loader("train", seed=0))

    def _finish_stage(self) -> None:
        # Later stages start from the best weights so far (lp-ft fine-tunes the best probe).
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self.state.stage_index += 1
        self.state.epoch = 0
        self.state.step = 0
        self.state.stop_stage = False
        self.state.bad_epochs = 0
        self.state.stage_best = None
        self._features = None
        self._save_checkpoint()

    # ------------------------------------------------------------------ epochs
    def _run_epoch(self, stage: Stage) -> dict[str, Any]:
        seed = epoch_seed(self.cfg.seed, self.state.stage_index, self.state.epoch)
        torch.manual_seed(seed)
        self._unread = None
        t0 = time.perf_counter()
        if stage.on_features:
            train_loss, train_acc, n_images = self._probe_epoch(stage, seed)
            train_time = time.perf_counter() - t0
            val_logits, val_labels = self._head_logits(self._probe_features()[2]), self._probe_features()[3]
        else:
            train_loss, train_acc, n_images = self._finetune_epoch(stage, seed)
            train_time = time.perf_counter() - t0
            val_logits, val_labels = self._predict_val()
        elapsed = time.perf_counter() - t0
        probs = logits_to_probs(val_logits, self.num_classes)
        val_loss = float(self.loss_fn(val_logits.to(self.dev.device), val_labels.to(self.dev.device), smoothing=False))
        metrics = val_metrics(probs, val_labels)
        self.state.epoch += 1
        return {
            "epoch": len(self.state.history) + 1,
            "stage": stage.name,
            "stage_epoch": self.state.epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": metrics["accuracy"],
            "val_balanced_accuracy": metrics["balanced_accuracy"],
            "val_macro_f1": metrics["macro_f1"],
            "lr": max(g["lr"] for g in self.optimizer.param_groups),
            "time": elapsed,  # the whole epoch, validation included
            "images_per_s": n_images / max(train_time, 1e-9),  # training pass only
        }

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

    @staticmethod
    def _correct(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Correct predictions of a batch, as a device tensor (summed once per epoch, no sync)."""
        pred = (logits.reshape(-1) > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
        hard = target.argmax(1) if target.dim() == 2 else target
        return (pred == hard).sum()

    def _finetune_epoch(self, stage: Stage, seed: int) -> tuple[float, float, int]:
        loader = self.make_loader("train", seed=seed)
        self._call("on_epoch_start", stage, len(loader))
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._epoch_loss, correct, seen = 0.0, torch.zeros((), dtype=torch.long, device=self.dev.device), 0
        for images, target in loader:
            self.scheduler.step_update(self.state.step)
            images = self.dev.to_device(images)
            target = target.to(self.dev.device, non_blocking=True)
            with self.dev.autocast():
                logits = self.model(images)
            loss = self.loss_fn(logits, target)
            n = images.shape[0]
            self._optimizer_step(loss, params, n)
            correct += self._correct(logits.detach(), target)
            seen += n
        self._settle()
        return self._epoch_loss / max(seen, 1), int(correct) / max(seen, 1), seen

    # ------------------------------------------------------------------ probe on cached features
    def _probe_features(self) -> tuple[torch.Tensor, ...]:
        """Backbone features of train and val, extracted once per stage: the probe's epochs only
        run the head."""
        if self._features is None:
            def extract(kind: str):
                return lambda: extract_features(self.model, self.make_loader(kind, seed=0), self.dev)

            # the cache holds the *pretrained* backbone's features: valid while no stage has trained it
            pretrained = all(s.on_features for s in self.stages[: self.state.stage_index])
            if self.feature_cache is not None and pretrained:
                train_f, train_y = self.feature_cache.features("train_eval", extract("train_eval"))
                val_f, val_y = self.feature_cache.features("val", extract("val"))
            else:
                train_f, train_y = extract("train_eval")()
                val_f, val_y = extract("val")()
            self._features = (train_f, train_y, val_f, val_y)
        return self._features

    @torch.no_grad()
    def _head_logits(self, feats: torch.Tensor) -> torch.Tensor:
        head = self._head()
        head.eval()
        out = torch.cat([head(feats[i : i + 4096].to(self.dev.device)).float().cpu() for i in range(0, len(feats), 4096)])
        return out

    def _probe_epoch(self, stage: Stage, seed: int) -> tuple[float, float, int]:
        feats, labels = self._probe_features()[:2]
        head = self._head()
        bs = self.cfg.batch_size
        n_batches = math.ceil(len(feats) / bs)
        self._call("on_epoch_start", stage, n_batches)
        head.train()
        order = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed))
        params = list(head.parameters())
        self._epoch_loss, correct = 0.0, torch.zeros((), dtype=torch.long, device=self.dev.device)
        for i in range(n_batches):
            idx = order[i * bs : (i + 1) * bs]
            x = feats[idx].to(self.dev.device)
            y = labels[idx].to(self.dev.device)
            self.scheduler.step_update(self.state.step)
            logits = head(x)
            loss = self.loss_fn(logits, y)
            self._optimizer_step(loss, params, len(idx))
            correct += self._correct(logits.detach(), y)
        self._settle()
        return self._epoch_loss / len(feats), int(correct) / len(feats), len(feats)

    @torch.no_grad()
    def _predict_val(self) -> tuple[torch.Tensor, torch.Tensor]:
        return predict_logits(self.model, self.make_loader("val", seed=0), self.dev)

    # ------------------------------------------------------------------ best and checkpoints
    def _track_best(self, row: dict[str, Any]) -> None:
        self.state.history.append(row)
        value = row[self.cfg.monitor]
        if is_better(self.cfg.monitor, value, self.state.best_value):
            self.state.best_value = value
            self.state.best_epoch = row["epoch"]
            self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            if self.checkpoint_dir is not None:
                atomic_write(self.checkpoint_dir / "best.pt", lambda tmp: torch.save(self._best_state, tmp))

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "state": self.state.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
        }
        atomic_write(self.checkpoint_dir / "last.pt", lambda tmp: torch.save(payload, tmp))

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None
        if path is None or not path.is_file():
            raise HeadstartError(
                f"Cannot resume: no checkpoint at {str(path)!r}. Start the run without --resume."
            )
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise HeadstartError(f"Cannot resume from {str(path)!r}: unknown checkpoint format {payload.get('format')!r}.")
        self.state = TrainState.from_dict(payload["state"])
        self.model.load_state_dict(payload["model"])
        self._pending_optimizer_state = payload["optimizer"]
        best = self.checkpoint_dir / "best.pt"
        if best.is_file():
            self._best_state = torch.load(best, map_location="cpu", weights_only=True)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, loader, dev: DeviceSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every batch of ``loader`` with the model in eval mode."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    try:
        for images, target in loader:
            with dev.autocast():
                outs.append(model(dev.to_device(images)).float().cpu())
            labels.append(torch.as_tensor(target))
    finally:
        model.train(was_training)
    return torch.cat(outs), torch.cat(labels)
