"""Torch datasets and loaders: cached decoded images and (seed, epoch)-deterministic loading.

Speed. On a 2-core CPU, decoding a JPEG and resizing it costs more than the random crop and
normalisation of a small image, and often more than the model's forward pass on it. The
:class:`ImageCache` keeps each image decoded and resized (uint8, at ``Preprocessing.resize_size``)
so that only the first epoch pays for decoding; later epochs run the cheap tensor augmentations.

Determinism. A run that is resumed must replay exactly what an uninterrupted run would have done,
so everything random in an epoch is a pure function of ``(seed, epoch)``:

* the shuffling order comes from a ``torch.Generator`` seeded with ``epoch_seed(seed, epoch)``
  inside :func:`create_loader`;
* with ``num_workers > 0`` each worker's torch RNG is seeded by the DataLoader from that same
  generator (and :func:`_seed_worker` seeds ``random``/``numpy`` from it), so augmentations are
  deterministic too, whichever worker handles which batch;
* with ``num_workers == 0`` the augmentations (and mixup/cutmix in the collate function) draw from
  torch's *global* RNG in the main process, so whoever iterates the loader seeds that RNG first,
  every epoch. The trainer does it itself: at the start of each epoch it seeds torch's global RNG
  with a seed of (run seed, stage, epoch) and asks for that epoch's loader with the same seed; the
  model's own randomness (dropout, drop-path) then follows deterministically as well. Code that
  drives these loaders by hand (tests, scripts) can call :func:`seed_epoch` ``(seed, epoch)``, which
  seeds torch's, numpy's and Python's RNGs, before iterating.

:func:`create_loader` makes one DataLoader per epoch. A run with workers uses
:class:`headstart.data.persistent.PersistentLoader` for the loaders of every epoch instead: the
same contract, without forking the workers again each epoch.

Caching with worker processes. Each DataLoader worker holds its own copy of the dataset, so a
``memory`` cache filled inside workers is thrown away when they exit at the end of the epoch.
Sound uses: ``num_workers == 0`` (the CPU default: the cache then lives in the main process), or
call :func:`warm` before creating loaders so workers inherit the filled cache (copy-on-write under
``fork``), or use the ``disk`` cache, which all processes share through the file system.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from headstart._validation import check_choice
from headstart.data.index import Sample
from headstart.data.transforms import Preprocessing, load_resized
from headstart.errors import ConfigError

__all__ = [
    "ImageCache",
    "ImageDataset",
    "create_loader",
    "epoch_seed",
    "seed_epoch",
    "seed_all",
    "usable_cores",
    "warm",
    "default_num_workers",
    "estimate_cache_bytes",
]


class ImageCache:
    """Decoded, resized images (uint8 CHW tensors) keyed by the file and the preprocessing.

    The key is ``(path, size, mtime_ns, resize_size, interpolation, crop_mode)``: editing or
    replacing an image, or switching to a model with another resize, misses the cache instead of
    serving stale pixels. One ``stat`` per access keeps that check cheap.

    ``mode``: ``'memory'`` (a dict in this process), ``'disk'`` (``.npy`` files in ``cache_dir``,
    written atomically -- temp file then ``os.replace`` -- so concurrent workers or a crash never
    leave a half-written entry) or ``'none'``. ``dataset_root``, when given, is checked so that the
    disk cache is never placed inside the user's dataset folder.
    """

    def __init__(
        self,
        mode: str = "memory",
        cache_dir: str | Path | None = None,
        *,
        dataset_root: str | Path | None = None,
    ):
        self.mode = check_choice("data.cache", mode, ("memory", "disk", "none"))
        self.cache_dir: Path | None = None
        if mode == "disk":
            if cache_dir is None:
                raise ConfigError("The 'disk' cache needs a folder: set data.cache_dir (or use data.cache=memory).")
            self.cache_dir = Path(cache_dir).expanduser().resolve()
            if dataset_root is not None:
                root = Path(dataset_root).expanduser().resolve()
                root = root.parent if root.is_file() else root
                if self.cache_dir == root or root in self.cache_dir.parents:
                    raise ConfigError(
                        f"The data.cache_dir {str(self.cache_dir)!r} is inside the dataset folder"
                        f" {str(root)!r}; headstart never writes into a dataset. Choose a folder"
                        " outside it (default: <run>/cache)."
                    )
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._memory: dict[tuple, torch.Tensor] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getstate__(self) -> dict:
        # DataLoader workers started with 'spawn' (macOS, Windows) pickle the dataset; a lock
        # cannot be pickled, and each process needs its own anyway.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @staticmethod
    def key(path: str | Path, pre: Preprocessing) -> tuple:
        st = os.stat(path)
        return (
            os.path.abspath(path),
            st.st_size,
            st.st_mtime_ns,
            pre.resize_size,
            pre.interpolation,
            pre.crop_mode,
        )

    def _file_for(self, key: tuple) -> Path:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:40]
        assert self.cache_dir is not None  # internal invariant, not user input
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def get(self, path: str | Path, pre: Preprocessing) -> torch.Tensor:
        """The cached uint8 CHW tensor of ``path``, decoding (and storing) it on a miss."""
        if self.mode == "none":
            self.misses += 1
            return load_resized(path, pre)
        key = self.key(path, pre)
        if self.mode == "memory":
            tensor = self._memory.get(key)
            if tensor is not None:
                self.hits += 1
                return tensor
            tensor = load_resized(path, pre)
            with self._lock:
                self._memory[key] = tensor
                self.misses += 1
            return tensor
        file = self._file_for(key)
        try:
            array = np.load(file, allow_pickle=False)
            self.hits += 1
            return torch.from_numpy(array)
        except (OSError, ValueError, EOFError):
            pass  # missing, or unreadable (disk full when it was written): rebuild it
        tensor = load_resized(path, pre)
        self._write(file, tensor)
        self.misses += 1
        return tensor

    def _write(self, file: Path, tensor: torch.Tensor) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=file.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, tensor.numpy(), allow_pickle=False)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __contains__(self, item: tuple[str | Path, Preprocessing]) -> bool:
        path, pre = item
        if self.mode == "none":
            return False
        key = self.key(path, pre)
        if self.mode == "memory":
            return key in self._memory
        return self._file_for(key).is_file()

    def __len__(self) -> int:
        if self.mode == "memory":
            return len(self._memory)
        if self.mode == "disk":
            return sum(1 for _ in self.cache_dir.glob("*/*.npy"))  # type: ignore[union-attr]
        return 0

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (``memory`` mode only)."""
        return sum(t.numel() for t in self._memory.values())

    def clear(self) -> None:
        self._memory.clear()


class ImageDataset(Dataset):
    """``samples`` as ``(float CHW tensor, int label)`` pairs: cached decode+resize, then ``transform``."""

    def __init__(
        self,
        samples: Sequence[Sample],
        pre: Preprocessing,
        transform: Callable,
        cache: ImageCache | None = None,
    ):
        self.samples = list(samples)
        self.pre = pre
        self.transform = transform
        self.cache = cache if cache is not None else ImageCache("none")

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> torch.Tensor:
        """The cached uint8 tensor of sample ``index``, before the transform."""
        return self.cache.get(self.samples[index].path, self.pre)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        return self.transform(self.cache.get(sample.path, self.pre)), sample.label

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed that depends only on ``(seed, epoch, stream)``, well mixed (numpy SeedSequence)
    so that consecutive epochs or seeds do not get correlated random streams."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seed_epoch(seed: int, epoch: int) -> int:
    """Seed torch's, numpy's and Python's global RNGs for ``epoch``; returns the seed used.

    For code that iterates loaders of :func:`create_loader` itself: called at the start of each
    epoch, it makes the augmentations of a ``num_workers == 0`` loader (and mixup/cutmix), which run
    in the main process on the global RNG, a function of (seed, epoch). The trainer does not call
    it: it seeds torch's global RNG with its own per-(stage, epoch) seed.
    """
    value = epoch_seed(seed, epoch, stream=1)
    seed_all(value)
    return value


def seed_all(value: int) -> None:
    """Seed torch's, numpy's and Python's global RNGs of this process with ``value`` (< 2**63)."""
    torch.manual_seed(value)
    np.random.seed(value % (2**32))
    random.seed(value)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id, base_seed drawn from the loader's
    # generator; derive numpy's and random's seeds from it so any library's augmentation is covered.
    value = torch.initial_seed() % (2**32)
    np.random.seed(value)
    random.seed(value)


def default_num_workers(device: str | torch.device = "cpu") -> int:
    """0 on CPU (the cache makes workers unnecessary there, and a 2-core machine needs its cores for
    the model), ``min(8, cores)`` on CUDA."""
    kind = torch.device(device).type if not isinstance(device, torch.device) else device.type
    return min(8, usable_cores()) if kind == "cuda" else 0


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one: a container or
    ``taskset`` limit), not every core of the machine."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def estimate_cache_bytes(num_images: int, pre: Preprocessing, aspect: float = 4 / 3) -> int:
    """Approximate memory of a ``memory`` cache of ``num_images`` photos with ``aspect`` (long/short
    side): 3 bytes per pixel at the eval resize. Lets the caller switch to the ``disk`` cache
    before running out of RAM (10,000 4:3 photos at resize 256 take about 2.6 GB)."""
    side = pre.resize_size
    return int(num_images * 3 * side * side * max(aspect, 1.0))


def create_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int = 0,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    pin_memory: bool = False,
    drop_last: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> DataLoader:
    """A DataLoader whose order (and, with workers, augmentation) is a pure function of
    ``(seed, epoch)``. Create one per epoch. With ``num_workers == 0`` also seed torch's global RNG
    before iterating, as the trainer does, or call :func:`seed_epoch` (see the module docstring).

    ``shard=(rank, world)`` with ``world > 1``: this rank's share of the same order
    (:mod:`headstart.data.shard`; padded when shuffled for training, not for evaluation)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"The 'batch_size' parameter must be an int in [1, inf). Got {batch_size!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"The 'num_workers' parameter must be an int in [0, inf). Got {num_workers!r}.")
    generator = torch.Generator()
    generator.manual_seed(epoch_seed(seed, epoch, stream=0))
    rank, world = shard
    if world > 1:
        from headstart.data.shard import ShardSampler, epoch_order
        from headstart.data.shard import shard as take

        order = epoch_order(len(dataset), generator) if shuffle else range(len(dataset))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=ShardSampler(take(order, rank, world, pad=shuffle), rank, world),
            generator=generator,
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            drop_last=drop_last,
            worker_init_fn=_seed_worker if num_workers > 0 else None,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=drop_last,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
    )


def warm(
    datasets: ImageDataset | Iterable[ImageDataset],
    *,
    progress: bool = True,
    num_threads: int | None = None,
    part: tuple[int, int] = (0, 1),
) -> int:
    """Fill the cache of ``datasets`` once, decoding in a thread pool; returns images decoded.

    Pillow releases the GIL while decoding and resizing, so threads use every core without worker
    processes. Do this before creating loaders with ``num_workers > 0`` and a memory cache, so the
    workers inherit the filled cache. No-op for ``cache='none'``. ``part=(i, n)``: only every
    ``n``-th image from the ``i``-th (one process's share of a shared ``disk`` cache).
    """
    from concurrent.futures import ThreadPoolExecutor

    if isinstance(datasets, ImageDataset):
        datasets = [datasets]
    jobs = [(ds.cache, s.path, ds.pre) for ds in datasets if ds.cache.mode != "none" for s in ds.samples]
    todo = [(c, p, pre) for c, p, pre in jobs[part[0] :: part[1]] if (p, pre) not in c]
    if not todo:
        return 0
    threads = num_threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = pool.map(lambda job: job[0].get(job[1], job[2]), todo)
        if progress:
            from rich.progress import track

            results = track(results, total=len(todo), description="Caching images")
        for _ in results:
            pass
    return len(todo)
