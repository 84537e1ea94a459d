"""Steps of a fit workflow that differ on several processes, shared by every task's fit."""

from __future__ import annotations

from typing import Sequence

from headstart.config import FitConfig

__all__ = ["warm_cache"]


def warm_cache(cfg: FitConfig, datasets: Sequence, verbose: bool) -> None:
    """Fill the image cache before the first epoch.

    One process, or the ``memory`` cache: every image of ``datasets`` (a memory cache lives in each
    process, and a rank reads different images every epoch). The ``disk`` cache on several
    processes: each rank of a machine decodes its share (``local_rank::local_world``) into the
    machine's cache folder, then all wait for the others, so a machine decodes each image once."""
    from headstart.data.dataset import warm
    from headstart.engine import distributed

    if cfg.data.cache == "none":
        return
    world = distributed.world()
    if cfg.data.cache == "disk" and world.is_distributed:
        warm(list(datasets), progress=verbose, part=(world.local_rank, world.local_size))
        distributed.barrier()
        return
    warm(list(datasets), progress=verbose)
