"""Fine-tuning plans for detection, as engine stages.

* ``head``: the backbone stays frozen; the new feature pyramid and heads train on its features.
* ``full``: everything trains from the start (the backbone at ``detect.backbone_lr_ratio`` x LR).
* ``head-ft`` (auto): ``head`` for ``detect.head_epochs``, then everything. New heads start from
  random weights; training them first keeps their large early gradients out of the pretrained
  backbone (the detection counterpart of classification's lp-ft).

In ``full`` and ``head-ft`` the backbone's stem and stages up to ``detect.frozen_stride`` (4 by
default) stay frozen throughout.
"""

from __future__ import annotations

from headstart.config import FitConfig
from headstart.engine.stages import Stage

__all__ = ["plan_stages"]


def plan_stages(cfg: FitConfig) -> list[Stage]:
    t = cfg.train
    finetune = Stage("finetune", t.epochs, t.lr)
    if t.strategy == "head":
        return [Stage("head", t.epochs, t.lr)]
    if t.strategy == "full":
        return [finetune]
    return [Stage("head", cfg.detect.head_epochs, t.lr), finetune]
