"""Every ``auto`` of a classification config, resolved in one place: ``fit`` writes the result into
config.yaml (so the file says what ran) and ``tune`` uses it as its default trial."""

from __future__ import annotations

from typing import Any

from headstart.config import FitConfig

__all__ = ["resolve_choices"]


def resolve_choices(cfg: FitConfig, n_train: int, *, device: Any = None) -> FitConfig:
    """``cfg`` with the strategy, the augmentation preset, the epochs, the batch size, the
    fine-tuning LR and (given the ``device``) the DataLoader workers decided for a training split of ``n_train`` images. The
    model name and input size are resolved with the model (see ``workflows.fit_classification``)."""
    from headstart.data.transforms import resolve_augment_preset
    from headstart.tasks.classification.strategies import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_EPOCHS,
        default_lr,
        resolve_freeze_bn,
        resolve_strategy,
    )

    t = cfg.train
    strategy = resolve_strategy(t.strategy, n_train, pretrained=cfg.model.pretrained)
    preset = resolve_augment_preset(cfg.augment.preset, n_train)
    batch_size = t.batch_size or DEFAULT_BATCH_SIZE
    lr = t.lr if t.lr is not None else default_lr(strategy, batch_size, t.optimizer)
    update: dict[str, Any] = {
        # hflip auto: off for classification (a mirrored symbol may be another class; config.py)
        "augment": cfg.augment.model_copy(update={"preset": preset,
                                                  "hflip": 0.0 if cfg.augment.hflip is None else cfg.augment.hflip}),
        "train": t.model_copy(update={"strategy": strategy, "lr": lr, "batch_size": batch_size,
                                      "epochs": t.epochs or DEFAULT_EPOCHS,
                                      "freeze_bn": resolve_freeze_bn(t.freeze_bn, strategy)}),
    }
    if device is not None and cfg.data.num_workers is None:
        from headstart.data.dataset import default_num_workers

        update["data"] = cfg.data.model_copy(update={"num_workers": default_num_workers(device)})
    return cfg.model_copy(update=update)
