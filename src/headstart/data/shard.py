"""One rank's share of an epoch, for training on several processes (torch.distributed).

The order of an epoch stays a function of ``(seed, epoch)`` only: every rank computes the very
permutation that a single process would use (:func:`epoch_order`), and takes every ``world``-th
item of it from its rank on. Global batch ``b`` (the per-device batches ``b`` of all ranks
together) then holds exactly the images of batch ``b`` of a single process with the global batch
size, so 2 ranks x 16 images take the same optimiser steps as 1 process x 32 (DDP averages the
gradients), and a run resumed with another number of devices replays the same global batches.

Training shards are padded, as torch's ``DistributedSampler`` pads, with the first items of the
order, so that every rank runs the same number of steps (DDP's collectives need it). Evaluation
shards are not padded: rank ``r`` evaluates items ``r, r + world, ...`` and
:func:`headstart.engine.distributed.interleave` puts the gathered results back in order, so every
image is counted once whatever the size of the split.

Why not ``DistributedSampler`` itself: it draws its own permutation (``seed + epoch``), not the one
of the single-process run, so 1 and N processes would train on different batches.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["ShardSampler", "epoch_order", "shard", "shard_length"]


def epoch_order(n: int, generator: torch.Generator) -> list[int]:
    """The order in which ``DataLoader(shuffle=True, generator=generator)`` visits ``n`` items:
    read from a DataLoader over ``range(n)`` itself, so it matches the single-process loader
    whatever torch does inside (the generator is consumed the same way)."""
    if n == 0:
        return []
    return next(iter(DataLoader(range(n), batch_size=n, shuffle=True, generator=generator))).tolist()


def shard_length(n: int, world: int, *, pad: bool) -> int:
    return math.ceil(n / world) if pad else n // world + (1 if n % world else 0)


def shard(order: Sequence[int], rank: int, world: int, *, pad: bool) -> list[int]:
    """``order[rank::world]``, the order first padded with its own first items to a multiple of
    ``world`` when ``pad`` (training: equal step counts on every rank)."""
    items = list(order)
    if pad and items:
        extra = (-len(items)) % world
        items += (items * (extra // len(items) + 1))[:extra]
    return items[rank::world]


class ShardSampler(Sampler):
    """A sampler over the fixed ``indices`` of one rank; ``shard_rank`` / ``shard_world`` tell the
    evaluation that gathers the ranks' results how the split was cut."""

    def __init__(self, indices: Sequence[int], rank: int, world: int):
        self.indices = list(indices)
        self.shard_rank, self.shard_world = int(rank), int(world)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
