import os

import pytest
import torch
from torch.utils.data import Dataset

import headstart
from headstart.config import AugmentConfig
from headstart.data.dataset import ImageCache, ImageDataset
from headstart.data.index import Sample
from headstart.data.persistent import EpochSampler, PersistentLoader
from headstart.data.transforms import Preprocessing, build_mix_collate, build_train_transform

PRE = Preprocessing(32, interpolation="bilinear", crop_pct=0.875)


@pytest.fixture
def samples(make_image_folder):
    root = make_image_folder({"cat": 6, "dog": 6}, size=(40, 48))
    return [Sample(path, label) for label, cls in enumerate(["cat", "dog"]) for path in sorted((root / cls).glob("*.png"))]


def test_epoch_sampler_order_and_token_depend_only_on_seed_and_epoch():
    s = EpochSampler(10, shuffle=True)
    s.set_epoch(0, 3)
    first = list(s)
    assert sorted(i for i, _ in first) == list(range(10)) and len({t for _, t in first}) == 1
    s.set_epoch(0, 4)
    assert list(s) != first
    s.set_epoch(0, 3)
    assert list(s) == first
    ordered = EpochSampler(4, shuffle=False)
    assert [i for i, _ in ordered] == [0, 1, 2, 3]


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_an_epoch_is_the_same_whichever_epoch_the_workers_started_in(samples):
    """What resume needs: epoch 2 of long-lived workers equals epoch 2 of fresh ones, mixup included."""
    aug = AugmentConfig()
    ds = ImageDataset(samples, PRE, build_train_transform(PRE, aug, "strong"), ImageCache("memory"))
    make = lambda: PersistentLoader(ds, 4, shuffle=True, num_workers=2, collate_fn=build_mix_collate(aug, 2, "strong"))
    long_lived, fresh = make(), make()
    try:
        e1 = _batches(long_lived.epoch(seed=0, epoch=1))
        torch.manual_seed(123)  # the trainer's global randomness does not reach the workers
        e2 = _batches(long_lived.epoch(seed=0, epoch=2))
        assert _same(e2, _batches(fresh.epoch(seed=0, epoch=2)))
        assert not _same(e1, e2)
        assert e2[0][1].shape == (4, 2)  # soft targets: the mixup collate ran in the workers
    finally:
        long_lived.close()
        fresh.close()


class _Pids(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.tensor(os.getpid())


def test_workers_live_across_epochs_until_closed():
    loader = PersistentLoader(_Pids(), 2, shuffle=False, num_workers=2)
    pids = [set(torch.cat(list(loader.epoch(seed=0, epoch=e))).tolist()) for e in (0, 1)]
    assert pids[0] == pids[1] and len(pids[0]) == 2 and os.getpid() not in pids[0]
    loader.close()
    with pytest.raises(RuntimeError, match="closed"):
        loader.epoch(seed=0, epoch=2)
    with pytest.raises(ValueError, match="num_workers >= 1"):
        PersistentLoader(_Pids(), 2, shuffle=False, num_workers=0)


def test_fit_with_workers_resumes_to_the_uninterrupted_result(image_folder, weights_env, tmp_path):
    from headstart.engine.callbacks import Callback

    class Interrupt(Callback):
        def on_epoch_end(self, trainer, row):
            if row["epoch"] == 2:
                raise KeyboardInterrupt

    common = dict(model="test_resnet", image_size=32, batch_size=8, strategy="full", epochs=3, patience=100,
                  augment="strong", num_workers=2, device="cpu", verbose=False)
    ref = headstart.fit(image_folder, out=tmp_path / "ref", **common)
    with pytest.raises(KeyboardInterrupt):
        headstart.fit(image_folder, out=tmp_path / "cut", callbacks=[Interrupt()], **common)
    resumed = headstart.fit(resume=True, out=tmp_path / "cut", verbose=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in rows]
    assert strip(resumed.history) == strip(ref.history)
    assert resumed.metrics["accuracy"] == ref.metrics["accuracy"]
