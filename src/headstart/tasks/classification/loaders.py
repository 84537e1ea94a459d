"""Datasets and loaders of a run, built once and shared by the trainer and the evaluation.

Train, train-for-features, val and test all read one image cache, so each image is decoded and
resized once per run whatever the strategy (the loaders themselves: :mod:`headstart.data.loaders`)."""

from __future__ import annotations

from typing import Callable

from headstart.config import FitConfig
from headstart.engine.device import DeviceSettings

__all__ = ["make_loader_factory"]


def make_loader_factory(index, pre, cfg: FitConfig, preset: str, cache, dev: DeviceSettings, *,
                        eval_split: str) -> tuple[Callable, dict, Callable[[], None]]:
    """``make_loader(kind, seed)`` for kind in train (augmented, shuffled by ``seed``), train_eval,
    val and test (evaluation transform, fixed order); the datasets by kind; and ``close()``, which
    stops the persistent workers (call it when the run is done). On several processes each loader
    yields this rank's share, in batches of ``train.batch_size / world size``."""
    from headstart.data.dataset import ImageDataset
    from headstart.data.loaders import loader_factory
    from headstart.data.transforms import build_eval_transform, build_mix_collate, build_train_transform
    from headstart.engine import distributed
    from headstart.engine.distributed import per_device_batch

    eval_tf = build_eval_transform(pre)
    train_tf = build_train_transform(pre, cfg.augment, preset)
    mix = build_mix_collate(cfg.augment, index.num_classes, preset)
    train = index.splits["train"]
    datasets = {
        "train": ImageDataset(train, pre, train_tf, cache),
        "train_eval": ImageDataset(train, pre, eval_tf, cache),
        "val": ImageDataset(index.splits["val"], pre, eval_tf, cache),
    }
    if index.splits.get("test"):
        datasets["test"] = ImageDataset(index.splits["test"], pre, eval_tf, cache)
    world = distributed.world()
    make_loader, close = loader_factory(datasets, batch_size=per_device_batch(cfg.train.batch_size, world.size),
                                        num_workers=cfg.data.num_workers or 0, pin_memory=dev.is_cuda,
                                        collate_train=mix, avoid_single_last=True, shard=(world.rank, world.size))
    return make_loader, datasets, close
