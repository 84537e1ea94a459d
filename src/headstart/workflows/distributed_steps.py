"""Steps of a fit workflow that differ on several processes, shared by every task's fit."""

from __future__ import annotations

from typing import Sequence

from headstart.config import FitConfig

__all__ = ["warm_cache", "memory_cache_note"]


def memory_cache_note(num_images: int, pre, processes: int, ram_bytes: int | None) -> str | None:
    """A warning when a ``memory`` cache in each of ``processes`` processes of this machine would
    take more than half of its RAM (``None`` when it fits, or the RAM is unknown)."""
    from headstart.data.dataset import estimate_cache_bytes

    need = estimate_cache_bytes(num_images, pre) * processes
    if not ram_bytes or need <= ram_bytes / 2:
        return None
    return (
        f"note: the memory image cache holds every image in each of the {processes} process(es) of this machine:"
        f" about {need / 1e9:.1f} GB of its {ram_bytes / 1e9:.1f} GB of RAM. Pass --cache disk (one copy per"
        " machine, in data.cache_dir) if it runs out of memory."
    )


def _ram_bytes() -> int | None:
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def warm_cache(cfg: FitConfig, datasets: Sequence, verbose: bool, console=None) -> None:
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
    if cfg.data.cache == "memory" and world.is_main and console is not None and datasets:
        images = len({s.path for ds in datasets for s in ds.samples})
        note = memory_cache_note(images, datasets[0].pre, world.local_size, _ram_bytes())
        if note:
            console.print(note)
    warm(list(datasets), progress=verbose)
