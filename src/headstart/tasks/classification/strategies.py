"""Fine-tuning strategies for classification, as a plan of engine stages.

* ``linear-probe``: the backbone stays frozen; its features are extracted once and only the head is
  trained on them, so the backbone never runs during the probe's epochs.
* ``full``: everything trains from the start (optionally with layer-wise LR decay).
* ``lp-ft``: a linear probe first, then everything at a lower LR starting from the probed head.
  Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
  ICLR 2022: a good head before unfreezing keeps the features from being distorted early on.
"""

from __future__ import annotations

from headstart.config import TrainConfig
from headstart.engine.stages import Stage

__all__ = ["STRATEGIES", "DEFAULT_EPOCHS", "DEFAULT_BATCH_SIZE", "FULL_FINETUNE_LR", "resolve_strategy",
           "resolve_freeze_bn", "default_lr", "plan_stages"]

STRATEGIES = ("linear-probe", "full", "lp-ft")
DEFAULT_EPOCHS = 10  # train.epochs when not given
DEFAULT_BATCH_SIZE = 32  # train.batch_size when not given
FULL_FINETUNE_LR = 2e-3  # AdamW peak LR of full fine-tuning at batch 32 (see default_lr)


def resolve_strategy(strategy: str, n_train: int, *, pretrained: bool = True) -> str:
    """``auto``: a frozen backbone (linear probe) under 200 training images, where fine-tuning
    mostly overfits; full fine-tuning from 200 images on. Without pretrained weights there is
    nothing to probe, so everything trains.

    Chosen on the design datasets of ``benchmarks/defaults.py`` (BENCHMARKS.md, "Classification
    defaults"): at 500 training images, full fine-tuning at the LR of :func:`default_lr` with
    ``light`` augmentation scored 0.938 / 0.984 / 0.899 test accuracy on textures / photos /
    greek against lp-ft's (with BatchNorm frozen after the probe) 0.915 / 0.983 / 0.817, for
    the same CPU time. lp-ft's probe fits a head to ImageNet features that are poor on images
    unlike ImageNet's (a linear probe reached 0.48 val accuracy on greek), and its low
    fine-tuning LR then cannot move far from them."""
    if strategy != "auto":
        return strategy
    if not pretrained:
        return "full"
    if n_train < 200:
        return "linear-probe"
    return "full"


def resolve_freeze_bn(freeze_bn: bool | None, strategy: str) -> bool:
    """``None`` (auto): BatchNorm stays in eval mode while fine-tuning after lp-ft's probe. The probe
    fit the head on features computed with BatchNorm in eval mode (the pretrained statistics);
    switching BatchNorm to train mode at the hand-over changes every feature under the probed head
    (with batches of 32 upsampled small images, batch statistics are far from ImageNet's), which
    showed as the hand-over jump of issue 15 (train accuracy 0.97 -> 0.60).

    Measured on the design dataset of ``benchmarks/defaults.py`` (textures, 496 training images,
    96 px; BENCHMARKS.md "Classification defaults"): lp-ft 0.873 test accuracy (fine-tuning never
    got back to its probe: train accuracy 0.96 -> 0.27 at the hand-over), lp-ft with BatchNorm
    frozen 0.915, full fine-tuning 0.903 (0.906 with BatchNorm frozen), for the same CPU time."""
    if freeze_bn is not None:
        return freeze_bn
    return strategy == "lp-ft"


def default_lr(strategy: str, batch_size: int, optimizer: str) -> float:
    """Peak LR of the fine-tuning stage, scaled linearly with the batch size from a base of 32.

    AdamW at :data:`FULL_FINETUNE_LR` for full fine-tuning (warmup, then cosine decay): measured on
    the design datasets (``benchmarks/defaults.py``), 2e-4, the previous default, kept the
    network too close to ImageNet for small or unlike-ImageNet images; after lp-ft's probe 1e-4
    (Kumar et al.: a probed head needs little change). SGD needs roughly 50x more."""
    base = 1e-4 if strategy == "lp-ft" else FULL_FINETUNE_LR
    if optimizer == "sgd":
        base *= 50
    return base * batch_size / 32


def plan_stages(cfg: TrainConfig, strategy: str) -> list[Stage]:
    batch_size = cfg.batch_size or DEFAULT_BATCH_SIZE
    lr = cfg.lr if cfg.lr is not None else default_lr(strategy, batch_size, cfg.optimizer)
    probe = Stage("probe", cfg.probe_epochs, cfg.probe_lr, on_features=True)
    finetune = Stage("finetune", cfg.epochs or DEFAULT_EPOCHS, lr)
    return {"linear-probe": [probe], "full": [finetune], "lp-ft": [probe, finetune]}[strategy]
