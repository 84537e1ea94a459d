from __future__ import annotations

import os

import pytest
import torch

import headstart.data.transforms as transforms_module
from headstart.config import AugmentConfig
from headstart.data.dataset import (
    ImageCache,
    ImageDataset,
    create_loader,
    default_num_workers,
    epoch_seed,
    estimate_cache_bytes,
    seed_epoch,
    warm,
)
from headstart.data.index import Sample, load_dataset
from headstart.data.transforms import (
    Preprocessing,
    build_eval_transform,
    build_mix_collate,
    build_train_transform,
)
from headstart.errors import ConfigError

PRE = Preprocessing(32, interpolation="bilinear", crop_pct=0.875)


@pytest.fixture
def samples(make_image_folder):
    root = make_image_folder({"cat": 6, "dog": 6}, size=(40, 48))
    return [
        Sample(path, label) for label, cls in enumerate(["cat", "dog"]) for path in sorted((root / cls).glob("*.png"))
    ]


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    original = transforms_module.open_rgb

    def counting(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(transforms_module, "open_rgb", counting)
    return calls


def test_dataset_items(samples):
    ds = ImageDataset(samples, PRE, build_eval_transform(PRE), ImageCache("none"))
    image, label = ds[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == 1
    assert len(ds) == 12 and ds.labels == [0] * 6 + [1] * 6
    assert ds.load(0).dtype == torch.uint8 and ds.load(0).shape == (3, 36 * 48 // 40, 36)


def test_memory_cache_hit_skips_decoding(samples, count_decodes):
    cache = ImageCache("memory")
    ds = ImageDataset(samples, PRE, build_train_transform(PRE, AugmentConfig(), "light"), cache)
    ds[0]
    ds[0]
    ds[1]
    assert len(count_decodes) == 2 and cache.hits == 1 and cache.misses == 2
    assert len(cache) == 2 and cache.nbytes > 0
    # An edited file (new mtime) misses the cache instead of serving stale pixels.
    st = samples[0].path.stat()
    os.utime(samples[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds[0]
    assert len(count_decodes) == 3


def test_disk_cache_atomic_outside_dataset(samples, tmp_path, count_decodes, monkeypatch, digest_tree):
    root = samples[0].path.parent.parent
    before = digest_tree(root)
    cache_dir = tmp_path / "run" / "cache"
    replaced = []
    real_replace = os.replace

    def recording_replace(src, dst):
        replaced.append((str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr("headstart.data.dataset.os.replace", recording_replace)
    cache = ImageCache("disk", cache_dir, dataset_root=root)
    first = cache.get(samples[0].path, PRE)
    assert len(replaced) == 1
    src, dst = replaced[0]
    assert os.path.dirname(src) == os.path.dirname(dst) and os.path.basename(src).startswith(".tmp-")
    assert dst.startswith(str(cache_dir.resolve())) and dst.endswith(".npy")
    assert not [p for p in cache_dir.rglob("*") if p.name.startswith(".tmp-")]
    # A second cache (another process, a resumed run) reads the file instead of decoding.
    again = ImageCache("disk", cache_dir).get(samples[0].path, PRE)
    assert torch.equal(first, again) and len(count_decodes) == 1
    assert (samples[0].path, PRE) in cache and len(cache) == 1
    assert digest_tree(root) == before


def test_disk_cache_refuses_dataset_folder(samples, tmp_path):
    root = samples[0].path.parent.parent
    with pytest.raises(ConfigError, match=r"cache_dir .* is inside the dataset folder .*never writes into a dataset"):
        ImageCache("disk", root / "cache", dataset_root=root)
    with pytest.raises(ConfigError, match="'disk' cache needs a folder"):
        ImageCache("disk")
    with pytest.raises(ConfigError, match=r"'data.cache' parameter must be one of .*Did you mean 'memory'"):
        ImageCache("memroy")


def test_dataset_pickles_for_spawned_workers(samples):
    import pickle

    cache = ImageCache("memory")
    ds = ImageDataset(samples, PRE, build_eval_transform(PRE), cache)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone.cache) == 1 and torch.equal(clone[0][0], ds[0][0])


def test_warm_fills_cache_once(samples, count_decodes):
    cache = ImageCache("memory")
    train = ImageDataset(samples[:8], PRE, build_eval_transform(PRE), cache)
    val = ImageDataset(samples[8:], PRE, build_eval_transform(PRE), cache)
    assert warm([train, val], progress=False) == 12
    assert warm(train, progress=False) == 0
    for i in range(len(train)):
        train[i]
    assert len(count_decodes) == 12


def _epoch(ds, seed, epoch, num_workers=0, collate_fn=None):
    seed_epoch(seed, epoch)
    loader = create_loader(ds, 4, shuffle=True, seed=seed, epoch=epoch, num_workers=num_workers, collate_fn=collate_fn)
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b):
    return all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True))


def test_loader_deterministic_per_seed_and_epoch(samples):
    aug = AugmentConfig()
    ds = ImageDataset(samples, PRE, build_train_transform(PRE, aug, "strong"), ImageCache("memory"))
    collate = build_mix_collate(aug, 2, "strong")
    first = _epoch(ds, 0, 3, collate_fn=collate)
    torch.rand(5)  # the trainer consumed global randomness in between
    again = _epoch(ds, 0, 3, collate_fn=collate)
    assert len(first) == 3 and first[0][1].shape == (4, 2)
    assert _same(first, again)
    assert not _same(first, _epoch(ds, 0, 4, collate_fn=collate))
    assert not _same(first, _epoch(ds, 1, 3, collate_fn=collate))


def test_seeding_torch_alone_replays_an_epoch_as_the_trainer_does(samples):
    """The module docstring's contract as the trainer uses it (it does not call seed_epoch): seed
    torch's global RNG, ask for the loader with the same seed; numpy's and Python's RNGs do not matter."""
    import random

    import numpy as np

    aug = AugmentConfig()
    ds = ImageDataset(samples, PRE, build_train_transform(PRE, aug, "strong"), ImageCache("memory"))
    collate = build_mix_collate(aug, 2, "strong")

    def epoch(seed):
        torch.manual_seed(seed)
        return [(x.clone(), y.clone()) for x, y in create_loader(ds, 4, shuffle=True, seed=seed, collate_fn=collate)]

    first = epoch(12345)
    np.random.seed(1)  # the other global RNGs moved on in between
    random.seed(2)
    torch.rand(3)
    assert _same(first, epoch(12345))
    assert not _same(first, epoch(12346))


def test_loader_deterministic_with_workers(samples):
    ds = ImageDataset(samples, PRE, build_train_transform(PRE, AugmentConfig(), "medium"), ImageCache("none"))
    first = _epoch(ds, 0, 1, num_workers=2)
    torch.manual_seed(123)  # worker randomness must not depend on the global RNG
    assert _same(first, create_loader_list(ds, 0, 1))
    assert not _same(first, create_loader_list(ds, 0, 2))


def create_loader_list(ds, seed, epoch):
    loader = create_loader(ds, 4, shuffle=True, seed=seed, epoch=epoch, num_workers=2)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_epoch_seed_and_defaults():
    assert epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(0, 2) != epoch_seed(1, 1)
    assert 0 <= epoch_seed(2**40, 10**6) < 2**63
    assert estimate_cache_bytes(10, Preprocessing(224), aspect=1.0) == 10 * 3 * 256 * 256
    assert default_num_workers("cpu") == 0 and default_num_workers("cuda") >= 1
    with pytest.raises(ConfigError, match=r"'batch_size' parameter must be an int in \[1, inf\). Got 0"):
        create_loader([], 0, shuffle=False, seed=0)


def test_end_to_end_from_folder(make_image_folder, data_cfg):
    root = make_image_folder({"a": 6, "b": 6, "c": 6})
    index = load_dataset(data_cfg(root), seed=0)
    pre = Preprocessing(32)
    cache = ImageCache("memory")
    ds = ImageDataset(index.splits["train"], pre, build_train_transform(pre, AugmentConfig(), "light"), cache)
    x, y = next(iter(create_loader(ds, 5, shuffle=True, seed=0)))
    assert x.shape == (5, 3, 32, 32) and y.dtype == torch.int64
