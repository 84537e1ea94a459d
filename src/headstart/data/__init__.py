"""The data layer: find, check, split, decode, cache, augment and load images.

Entry points: :func:`load_dataset` (a checked :class:`DatasetIndex` of files, labels and splits),
:class:`Preprocessing` (the model's resize/crop/normalisation), the transform builders, and
:class:`ImageDataset` / :func:`create_loader` for training.

Names are imported lazily: discovery, splitting and validation do not need torch, and ``import
headstart.data`` stays fast for the CLI.
"""

from __future__ import annotations

from headstart._lazy import attach

_LAZY = {
    # decode
    "IMAGE_EXTENSIONS": "headstart.data.decode",
    "open_rgb": "headstart.data.decode",
    "image_size": "headstart.data.decode",
    "check_image": "headstart.data.decode",
    # discover / split / validate / index
    "Discovery": "headstart.data.discover",
    "stratified_split": "headstart.data.split",
    "save_split": "headstart.data.split",
    "load_split": "headstart.data.split",
    "DataSummary": "headstart.data.validate",
    "Sample": "headstart.data.index",
    "DatasetIndex": "headstart.data.index",
    "load_dataset": "headstart.data.index",
    # transforms (torch imported inside the functions)
    "Preprocessing": "headstart.data.transforms",
    "resolve_augment_preset": "headstart.data.transforms",
    "build_eval_transform": "headstart.data.transforms",
    "build_train_transform": "headstart.data.transforms",
    "build_mix_collate": "headstart.data.transforms",
    "load_resized": "headstart.data.transforms",
    # torch datasets
    "ImageCache": "headstart.data.dataset",
    "ImageDataset": "headstart.data.dataset",
    "create_loader": "headstart.data.dataset",
    "epoch_seed": "headstart.data.dataset",
    "seed_epoch": "headstart.data.dataset",
    "seed_all": "headstart.data.dataset",
    "usable_cores": "headstart.data.dataset",
    "warm": "headstart.data.dataset",
    "default_num_workers": "headstart.data.dataset",
    "estimate_cache_bytes": "headstart.data.dataset",
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
