"""Rank shards of an epoch: the single process's permutation, cut in `world` interleaved parts."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from headstart.data.dataset import create_loader
from headstart.data.loaders import loader_factory
from headstart.data.persistent import EpochSampler
from headstart.data.shard import shard, shard_length
from headstart.engine.distributed import interleave


def _order(loader) -> list[int]:
    return [int(i) for (x,) in loader for i in x]


@pytest.mark.parametrize("n", [40, 37])
def test_rank_shards_split_each_global_batch_of_the_single_process_order(n):
    ds = TensorDataset(torch.arange(n))
    single = list(create_loader(ds, 8, shuffle=True, seed=3, epoch=2))
    ranks = [list(create_loader(ds, 4, shuffle=True, seed=3, epoch=2, shard=(r, 2))) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)  # same step count on every rank and the single run
    for b, (batch,) in enumerate(single):
        together = sorted(int(i) for r in range(2) for i in ranks[r][b][0])
        if b < len(single) - 1 or n % 2 == 0:
            assert together == sorted(batch.tolist())  # global batch b = the single process's batch b
        else:  # the odd last image is joined by a padding repeat of the epoch's first one
            assert set(together) == set(batch.tolist()) | {int(single[0][0][0])}


def test_the_order_depends_on_seed_and_epoch_only():
    ds = TensorDataset(torch.arange(30))
    a = _order(create_loader(ds, 4, shuffle=True, seed=1, epoch=5, shard=(1, 2)))
    torch.manual_seed(123)  # the global RNG plays no part
    assert a == _order(create_loader(ds, 4, shuffle=True, seed=1, epoch=5, shard=(1, 2)))
    assert a != _order(create_loader(ds, 4, shuffle=True, seed=1, epoch=6, shard=(1, 2)))


@pytest.mark.parametrize("n,world", [(7, 2), (10, 3), (2, 4), (1, 2)])
def test_evaluation_shards_are_unpadded_and_interleave_back_in_order(n, world):
    ds = TensorDataset(torch.arange(n))
    parts = [_order(create_loader(ds, 3, shuffle=False, seed=0, shard=(r, world))) for r in range(world)]
    assert interleave(parts) == list(range(n))  # every item once, none lost, none twice
    assert [len(p) for p in parts] == [len(range(r, n, world)) for r in range(world)]


def test_padded_training_shards_have_equal_lengths():
    order = list(range(5))
    parts = [shard(order, r, 4, pad=True) for r in range(4)]
    assert [len(p) for p in parts] == [shard_length(5, 4, pad=True)] * 4 == [2] * 4
    assert sorted(i for p in parts for i in p) == sorted(order + order[:3])  # padded with the first items
    assert shard([], 0, 2, pad=True) == []


def test_persistent_sampler_shards_its_own_order():
    whole = EpochSampler(11, shuffle=True)
    whole.set_epoch(4, 1)
    full = [i for i, _ in whole]
    parts = []
    for r in range(2):
        s = EpochSampler(11, shuffle=True, rank=r, world=2)
        s.set_epoch(4, 1)
        parts.append([i for i, _ in s])
        assert len(s) == 6
    padded = full + full[:1]
    assert parts[0] == padded[0::2] and parts[1] == padded[1::2]
    # rank 0 keeps the single process's augmentation token; rank 1 gets its own
    s1 = EpochSampler(11, shuffle=True, rank=1, world=2)
    s1.set_epoch(4, 1)
    s0 = EpochSampler(11, shuffle=True, rank=0, world=2)
    s0.set_epoch(4, 1)
    assert s0.token == whole.token != s1.token


def test_loader_factory_takes_the_per_device_batch_on_its_shard():
    datasets = {"train": TensorDataset(torch.arange(20)), "val": TensorDataset(torch.arange(9))}
    make, close = loader_factory(datasets, batch_size=5, num_workers=0, pin_memory=False, shard=(1, 2))
    assert len(make("train", seed=0)) == 2 and len(list(make("val"))) == 1
    assert _order(make("val")) == [1, 3, 5, 7]
    close()
