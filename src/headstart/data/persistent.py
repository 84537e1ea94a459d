"""A DataLoader whose worker processes live for the whole run, and stay (seed, epoch)-deterministic.

Why. :func:`headstart.data.dataset.create_loader` builds a new DataLoader every epoch, so with
``num_workers > 0`` every epoch forks its workers and shuts them down again. On an H100 that was
about 4 s of a 9.4 s fit (7 loaders x 8 workers; BENCHMARKS.md, GPU section). torch's
``persistent_workers=True`` keeps the workers, but it seeds each worker once, when the worker
starts. Each epoch's augmentations would then depend on every earlier epoch, and a resumed run
(fresh workers) would not replay what an uninterrupted run did. torch has no per-epoch reseed for
map-style datasets, so this module adds one:

* :class:`EpochSampler` yields ``(index, token)`` pairs. The order and the token are pure functions
  of ``(seed, epoch)`` (:func:`~headstart.data.dataset.epoch_seed`, streams 0 and 2).
* :class:`EpochSeeded` wraps the dataset. When a worker sees a new token, at its first sample of an
  epoch, it reseeds torch, numpy and ``random`` with ``token + worker id``. Batches go to the
  workers in a fixed round-robin, so every augmentation, and the mixup/cutmix collate that runs in
  the worker after its batch, is a function of (seed, epoch, worker count) as before, whichever
  epoch the workers were started in.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from headstart.data.dataset import epoch_seed, seed_all

__all__ = ["EpochSampler", "EpochSeeded", "PersistentLoader"]


class EpochSampler(Sampler):
    """``(index, token)`` for every sample of an epoch: shuffled by ``epoch_seed(seed, epoch)`` (or
    in order), with one token per epoch that tells the workers to reseed. ``rank``/``world``: this
    rank's share of that order (:mod:`headstart.data.shard`), and a token of its own."""

    def __init__(self, n: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.n, self.shuffle = int(n), bool(shuffle)
        self.shard_rank, self.shard_world = int(rank), int(world)
        self.set_epoch(0, 0)

    def set_epoch(self, seed: int, epoch: int = 0) -> None:
        self._order_seed = epoch_seed(seed, epoch, stream=0)
        # rank 0's token is the single-process one; other ranks augment with streams of their own
        self.token = epoch_seed(seed, epoch, stream=2 + 1000 * self.shard_rank)

    def __len__(self) -> int:
        if self.shard_world > 1:
            from headstart.data.shard import shard_length

            return shard_length(self.n, self.shard_world, pad=self.shuffle)
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self._order_seed)).tolist()
        else:
            order = range(self.n)
        if self.shard_world > 1:
            from headstart.data.shard import shard

            order = shard(order, self.shard_rank, self.shard_world, pad=self.shuffle)
        token = self.token
        return iter([(i, token) for i in order])


class EpochSeeded(Dataset):
    """``dataset[index]`` for ``(index, token)`` items, reseeding this process's RNGs whenever the
    token changes (once per epoch per worker)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._token: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, token = item
        if token != self._token:
            self._token = token
            info = get_worker_info()
            seed_all((token + (info.id if info is not None else 0)) % (2**63))
        return self.dataset[index]


class PersistentLoader:
    """One DataLoader with ``persistent_workers=True`` for all epochs of a run:
    ``loader.epoch(seed, epoch)`` sets the epoch's order and seeds and returns it. Call
    :meth:`close` when the run is done, so the workers exit now rather than at garbage collection."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool,
        num_workers: int,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ):
        if num_workers < 1:
            raise ValueError(f"PersistentLoader needs num_workers >= 1 (got {num_workers}); use create_loader")
        self.sampler = EpochSampler(len(dataset), shuffle, *shard)
        self.loader: DataLoader | None = DataLoader(
            EpochSeeded(dataset),
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            drop_last=drop_last,
            persistent_workers=True,
            # the workers' base seed is drawn from this, not from the trainer's global RNG
            generator=torch.Generator().manual_seed(0),
        )

    def epoch(self, seed: int, epoch: int = 0) -> DataLoader:
        if self.loader is None:
            raise RuntimeError("this PersistentLoader was closed")
        self.sampler.set_epoch(seed, epoch)
        return self.loader

    def close(self) -> None:
        """Stop the worker processes. torch has no public call for this: persistent workers stop
        when the loader's iterator is collected, and ``_shutdown_workers`` is what its
        ``__del__`` runs."""
        loader, self.loader = self.loader, None
        iterator = getattr(loader, "_iterator", None) if loader is not None else None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
