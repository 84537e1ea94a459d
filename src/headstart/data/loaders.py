"""``make_loader(kind, seed)`` over a run's datasets, the one factory every task's fit uses.

The train and val loaders, which run every epoch, keep their worker processes for the whole run
(:mod:`headstart.data.persistent`); the loaders used once (train features, test) start theirs when
used. Training batches are shuffled by ``seed``; the others keep the dataset's order."""

from __future__ import annotations

from typing import Callable, Mapping

__all__ = ["loader_factory"]


def loader_factory(datasets: Mapping, *, batch_size: int, num_workers: int, pin_memory: bool,
                   collate_train: Callable | None = None, collate_eval: Callable | None = None,
                   avoid_single_last: bool = False, shard: tuple[int, int] = (0, 1)) -> tuple[Callable, Callable[[], None]]:
    """``(make_loader, close)``. ``avoid_single_last``: drop a last training batch of one image
    (BatchNorm in train mode cannot normalise it). Call ``close()`` when the run is done: it stops
    the persistent workers.

    ``shard=(rank, world)``: on several processes, each loader yields this rank's share of the
    split (:mod:`headstart.data.shard`) and ``batch_size`` is the per-device batch (the global
    batch divided by the world size)."""
    from headstart.data.dataset import create_loader
    from headstart.data.persistent import PersistentLoader
    from headstart.data.shard import shard_length

    persistent: dict[str, PersistentLoader] = {}

    def make_loader(kind: str, seed: int = 0):
        if kind not in datasets:
            raise KeyError(f"no {kind!r} split in this dataset")
        is_train = kind == "train"
        ds = datasets[kind]
        n = len(ds) if shard[1] == 1 else shard_length(len(ds), shard[1], pad=is_train)
        options = dict(
            collate_fn=collate_train if is_train else collate_eval,
            pin_memory=pin_memory,
            drop_last=avoid_single_last and is_train and n > batch_size and n % batch_size == 1,
            shard=shard,
        )
        if num_workers > 0 and kind in ("train", "val"):
            if kind not in persistent:
                persistent[kind] = PersistentLoader(ds, batch_size, shuffle=is_train, num_workers=num_workers, **options)
            return persistent[kind].epoch(seed)
        return create_loader(ds, batch_size, shuffle=is_train, seed=seed, num_workers=num_workers, **options)

    def close() -> None:
        for loader in persistent.values():
            loader.close()
        persistent.clear()

    return make_loader, close
