"""The classification task as the engine sees it (:class:`headstart.engine.protocol.TrainableTask`).

It holds the timm model, the run's loaders and the loss. A stage on features (the linear probe)
trains only the classifier on backbone features extracted once (read from rank's on-disk cache
while the backbone is still the pretrained one); other stages train everything, through the loaders.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from headstart.config import TrainConfig
from headstart.engine.device import DeviceSettings
from headstart.engine.distributed import broadcast_object, gather_rows, world
from headstart.engine.protocol import StepOutput
from headstart.engine.stages import Stage
from headstart.tasks.classification.features import extract_features
from headstart.tasks.classification.loss import ClassificationLoss, logits_to_probs
from headstart.tasks.classification.metrics import METRIC_DIRECTIONS, PROGRESS_COLUMNS, val_metrics

__all__ = ["ClassificationTask", "predict_logits"]

_HEAD_CHUNK = 4096  # rows of cached features per forward pass of the head when validating


def _set_batchnorm_eval(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


class _FeatureBatches:
    """One epoch of a probe: shuffled mini-batches of cached features, already on the device."""

    def __init__(self, feats: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, device):
        self.feats, self.labels, self.bs, self.device = feats, labels, batch_size, device
        self.order = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return math.ceil(len(self.feats) / self.bs)

    def __iter__(self):
        for i in range(len(self)):
            idx = self.order[i * self.bs : (i + 1) * self.bs]
            yield self.feats[idx].to(self.device), self.labels[idx].to(self.device)


class ClassificationTask:
    """``make_loader(kind, seed)`` returns a DataLoader for ``kind`` in ``'train'`` (augmented,
    shuffled with ``seed``), ``'train_eval'`` and ``'val'`` (evaluation transform, fixed order).
    ``freeze_bn`` keeps BatchNorm statistics frozen while fine-tuning too (probe stages always do);
    ``None`` (auto, when the config was not resolved) freezes them in stages that follow a probe.
    ``feature_cache``: an optional :class:`headstart.select.feature_cache.BoundFeatureCache`, from
    which a probe reads the pretrained backbone's features instead of computing them."""

    name = "classify"
    metric_directions = METRIC_DIRECTIONS
    progress_columns = PROGRESS_COLUMNS

    def __init__(self, model: torch.nn.Module, *, num_classes: int, make_loader: Callable, dev: DeviceSettings,
                 cfg: TrainConfig, class_weights: torch.Tensor | None = None, feature_cache: Any = None):
        self.model = model
        self.num_classes = num_classes
        self.make_loader = make_loader
        self.dev = dev
        self.batch_size = cfg.batch_size
        self.freeze_bn = cfg.freeze_bn
        self.feature_cache = feature_cache
        self.loss_fn = ClassificationLoss(
            num_classes, label_smoothing=cfg.label_smoothing, class_weights=class_weights
        ).to(dev.device)
        self._features: tuple[torch.Tensor, ...] | None = None
        self._backbone_trained = False
        self._after_probe = False

    def head(self) -> torch.nn.Module:
        return self.model.get_classifier()

    # ------------------------------------------------------------------ the engine's questions
    def setup_stage(self, stage: Stage, done: Sequence[Stage]) -> torch.nn.Module:
        """A probe trains the classifier only; other stages train everything."""
        self._backbone_trained = any(not s.on_features for s in done)
        self._after_probe = any(s.on_features for s in done)
        head_ids = {id(p) for p in self.head().parameters()}
        for p in self.model.parameters():
            p.requires_grad_(not stage.on_features or id(p) in head_ids)
        return self.head() if stage.on_features else self.model

    def steps_per_epoch(self, stage: Stage) -> int:
        if stage.on_features:
            return math.ceil(len(self._probe_features()[1]) / self.batch_size)
        return len(self.make_loader("train", seed=0))

    def train_batches(self, stage: Stage, seed: int):
        self.model.train()
        freeze = self.freeze_bn if self.freeze_bn is not None else self._after_probe
        if stage.on_features or freeze:
            _set_batchnorm_eval(self.model)
        if stage.on_features:
            feats, labels = self._probe_features()[:2]
            return _FeatureBatches(feats, labels, self.batch_size, seed, self.dev.device)
        return self.make_loader("train", seed=seed)

    def training_step(self, stage: Stage, batch) -> StepOutput:
        x, target = batch
        if stage.on_features:
            logits = self.head()(x)
        else:
            x = self.dev.to_device(x)
            target = target.to(self.dev.device, non_blocking=True)
            logits = self.model(x)
        loss = self.loss_fn(logits, target)
        return StepOutput(loss, x.shape[0], {"accuracy": _correct(logits.detach(), target)})

    def validate(self, stage: Stage) -> dict[str, float]:
        if stage.on_features:
            logits, labels = self._head_logits(self._probe_features()[2]), self._probe_features()[3]
        else:
            logits, labels = predict_logits(self.model, self.make_loader("val", seed=0), self.dev)
        probs = logits_to_probs(logits, self.num_classes)
        loss = float(self.loss_fn(logits.to(self.dev.device), labels.to(self.dev.device), smoothing=False))
        return {"val_loss": loss, **val_metrics(probs.numpy(), labels.numpy(), self.num_classes)}

    def end_stage(self, stage: Stage) -> None:
        self._features = None

    # ------------------------------------------------------------------ probe on cached features
    def _probe_features(self) -> tuple[torch.Tensor, ...]:
        """Backbone features of train and val, extracted once per stage: the probe's epochs only
        run the head."""
        if self._features is None:
            def extract(kind: str):
                return lambda: extract_features(self.model, self.make_loader(kind, seed=0), self.dev)

            # the cache holds the *pretrained* backbone's features: valid while no stage has trained it
            if self.feature_cache is not None and not self._backbone_trained:
                train_f, train_y = self._cached("train_eval", extract("train_eval"))
                val_f, val_y = self._cached("val", extract("val"))
            else:
                train_f, train_y = extract("train_eval")()
                val_f, val_y = extract("val")()
            self._features = (train_f, train_y, val_f, val_y)
        return self._features

    def _cached(self, kind: str, compute: Callable[[], tuple]) -> tuple:
        """Features from rank's on-disk cache, else ``compute()`` (stored). On several processes
        rank 0 alone looks the cache up and broadcasts a hit: the cache may live on its machine
        only, and reading it once is cheaper than N times. A miss is extracted by every rank on its
        share of the split and gathered (N devices, 1/N of the images each); rank 0 stores it."""
        if not world().is_distributed:
            return self.feature_cache.features(kind, compute)
        found = broadcast_object(self.feature_cache.lookup(kind) if world().is_main else None)
        if found is not None:
            return found
        feats, labels = compute()
        if world().is_main:
            self.feature_cache.store(kind, feats, labels)
        return feats, labels

    @torch.no_grad()
    def _head_logits(self, feats: torch.Tensor) -> torch.Tensor:
        head = self.head()
        head.eval()
        return torch.cat([head(feats[i : i + _HEAD_CHUNK].to(self.dev.device)).float().cpu()
                          for i in range(0, len(feats), _HEAD_CHUNK)])


def _correct(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Correct predictions of a batch, as a device tensor (summed once per epoch, no sync)."""
    pred = (logits.reshape(-1) > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
    hard = target.argmax(1) if target.dim() == 2 else target
    return (pred == hard).sum()


@torch.no_grad()
def predict_logits(model: torch.nn.Module, loader, dev: DeviceSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of every batch of ``loader`` with the model in eval mode (of the whole
    split, gathered from every rank, when ``loader`` yields one rank's share)."""
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
    # a loader of one rank's share (several processes): every rank gets the whole split, in order
    return gather_rows(torch.cat(outs), loader), gather_rows(torch.cat(labels), loader)
