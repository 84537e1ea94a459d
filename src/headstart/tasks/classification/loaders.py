"""Datasets and loaders of a run, built once and shared by the trainer and the evaluation.

Train, train-for-features, val and test all read one image cache, so each image is decoded and
resized once per run whatever the strategy. With worker processes, the train and val loaders, which
run every epoch, keep their workers for the whole run (:mod:`headstart.data.persistent`); the
loaders used once (train features, test) start theirs when used."""

from __future__ import annotations

from typing import Callable

from headstart.config import FitConfig
from headstart.engine.device import DeviceSettings

__all__ = ["make_loader_factory"]


def make_loader_factory(index, pre, cfg: FitConfig, preset: str, cache, dev: DeviceSettings, *,
                        eval_split: str) -> tuple[Callable, dict, Callable[[], None]]:
    """``make_loader(kind, seed)`` for kind in train (augmented, shuffled by ``seed``), train_eval,
    val and test (evaluation transform, fixed order); the datasets by kind; and ``close()``, which
    stops the persistent workers (call it when the run is done)."""
    from headstart.data.dataset import ImageDataset, create_loader
    from headstart.data.persistent import PersistentLoader
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

    persistent: dict[str, PersistentLoader] = {}

    def make_loader(kind: str, seed: int = 0):
        if kind not in datasets:
            raise KeyError(f"no {kind!r} split in this dataset")
        is_train = kind == "train"
        ds = datasets[kind]
        options = dict(
            collate_fn=mix if is_train else None,
            pin_memory=dev.is_cuda,
            # a last batch of one image breaks BatchNorm in train mode
            drop_last=is_train and len(ds) > bs and len(ds) % bs == 1,
        )
        if workers > 0 and kind in ("train", "val"):
            if kind not in persistent:
                persistent[kind] = PersistentLoader(ds, bs, shuffle=is_train, num_workers=workers, **options)
            return persistent[kind].epoch(seed)
        return create_loader(ds, bs, shuffle=is_train, seed=seed, num_workers=workers, **options)

    def close() -> None:
        for loader in persistent.values():
            loader.close()
        persistent.clear()

    return make_loader, datasets, close
