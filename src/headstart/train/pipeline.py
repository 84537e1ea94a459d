"""Datasets and loaders of a run, built once and shared by the trainer and the evaluation.

Train, train-for-features, val and test all read one image cache, so each image is decoded and
resized once per run whatever the strategy."""

from __future__ import annotations

from typing import Callable

from headstart.config import FitConfig
from headstart.train.device import DeviceSettings

__all__ = ["make_loader_factory"]


def make_loader_factory(index, pre, cfg: FitConfig, preset: str, cache, dev: DeviceSettings, *, eval_split: str) -> tuple[Callable, dict]:
    """``make_loader(kind, seed)`` for kind in train (augmented, shuffled by ``seed``), train_eval,
    val and test (evaluation transform, fixed order); and the datasets by kind."""
    from headstart.data.dataset import ImageDataset, create_loader
    from headstart.data.transforms import build_eval_transform, build_mix_collate, build_train_transform

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
    bs = cfg.train.batch_size
    workers = cfg.data.num_workers or 0

    def make_loader(kind: str, seed: int = 0):
        if kind not in datasets:
            raise KeyError(f"no {kind!r} split in this dataset")
        is_train = kind == "train"
        ds = datasets[kind]
        return create_loader(
            ds,
            bs,
            shuffle=is_train,
            seed=seed,
            num_workers=workers,
            collate_fn=mix if is_train else None,
            pin_memory=dev.is_cuda,
            # a last batch of one image breaks BatchNorm in train mode
            drop_last=is_train and len(ds) > bs and len(ds) % bs == 1,
        )

    return make_loader, datasets
