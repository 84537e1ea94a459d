"""torch.distributed plumbing, knowing no task: who this process is, the process group, the few
collectives the engine and the tasks use, and the launcher of ``--devices N``.

headstart runs under PyTorch's own launcher (``torchrun``, which does multi-node rendezvous and
failure propagation) or starts one itself through torch's elastic launcher API (:func:`launch`);
it never reimplements either. Under both, each process reads ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` from its environment (:func:`env_world`).

The process group uses gloo for CPU tensors and, when CUDA is there, NCCL for CUDA tensors (one
``cpu:gloo,cuda:nccl`` group, so the Python-object collectives below always go through gloo). Its
timeout, ``HEADSTART_DIST_TIMEOUT`` seconds (default 1800), bounds how long a rank waits in a
collective for a peer that died without the launcher noticing (another machine); on one machine
the launcher ends the other ranks as soon as one fails.

Every function works in a single process too (world size 1), where the collectives return at once:
callers need no ``if distributed`` of their own.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

from headstart.errors import ConfigError, HeadstartError

__all__ = [
    "World",
    "DistributedError",
    "env_world",
    "world",
    "is_main",
    "init_process_group",
    "teardown",
    "session",
    "barrier",
    "all_gather_object",
    "broadcast_object",
    "all_reduce_sum",
    "on_main",
    "interleave",
    "gather_items",
    "gather_rows",
    "timeout_seconds",
    "launch",
    "per_device_batch",
]

DEFAULT_TIMEOUT_S = 1800


class DistributedError(HeadstartError, RuntimeError):
    """A rank of a distributed run failed; the message names the rank and the cause."""


@dataclass(frozen=True)
class World:
    """This process's place among the workers of a run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise HeadstartError(
            f"The environment variable {name}={value!r} must be an integer (set by torchrun)."
        ) from None


def env_world() -> World:
    """The world the launcher (torchrun, or :func:`launch`) describes in the environment."""
    size = _env_int("WORLD_SIZE", 1)
    return World(_env_int("RANK", 0), size, _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", size))


def world() -> World:
    """The initialised process group's world, else World() (one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return World()
    env = env_world()
    return World(dist.get_rank(), dist.get_world_size(), env.local_rank, env.local_size)


def is_main() -> bool:
    return world().is_main


def timeout_seconds() -> float:
    value = os.environ.get("HEADSTART_DIST_TIMEOUT", "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise HeadstartError(
            f"HEADSTART_DIST_TIMEOUT={value!r} must be a number of seconds > 0 (default {DEFAULT_TIMEOUT_S})."
        )
    return seconds


def init_process_group() -> World:
    """Join the process group the environment describes: ``cuda:LOCAL_RANK`` becomes this process's
    CUDA device when there is one. Returns the world."""
    import torch
    import torch.distributed as dist

    env = env_world()
    if torch.cuda.is_available():
        if env.local_rank >= torch.cuda.device_count():
            raise HeadstartError(
                f"LOCAL_RANK={env.local_rank} but this machine has {torch.cuda.device_count()} CUDA device(s):"
                " start at most one process per GPU (--devices / --nproc-per-node)."
            )
        torch.cuda.set_device(env.local_rank)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_seconds()))
    return world()


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session() -> Iterator[World]:
    """Inside, the process group of the environment's world is up (nothing to do for one process,
    or when the caller already initialised it); it is torn down on the way out if this started it."""
    import torch.distributed as dist

    env = env_world()
    started = env.is_distributed and not dist.is_initialized()
    current = init_process_group() if started else world()
    try:
        yield current
    finally:
        if started:
            teardown()


def barrier() -> None:
    import torch.distributed as dist

    if world().is_distributed:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    import torch.distributed as dist

    w = world()
    if not w.is_distributed:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    import torch.distributed as dist

    if not world().is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """The sums over the ranks of ``values`` (float64 on the CPU, through gloo)."""
    import torch
    import torch.distributed as dist

    if not world().is_distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on rank 0 only, its result broadcast to every rank. When it raises, every rank
    raises the same error (instead of the others waiting for a result that never comes)."""
    if not world().is_distributed:
        return fn()
    outcome: tuple[str, Any] = ("none", None)
    if is_main():
        try:
            outcome = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised below on every rank
            outcome = ("error", exc)
    outcome = broadcast_object(outcome)
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]


def interleave(parts: Sequence[Sequence[Any]]) -> list[Any]:
    """Items sharded as ``items[rank::world]`` (one list per rank, in rank order) back in their
    original order: item ``i`` is ``parts[i % world][i // world]``."""
    size = len(parts)
    total = sum(len(p) for p in parts)
    return [parts[i % size][i // size] for i in range(total)]


def per_device_batch(global_batch: int, world_size: int) -> int:
    """Each device's share of ``train.batch_size``, which stays the global batch (the images of one
    optimiser step, whatever the device count): ``global_batch / world_size``, which must divide."""
    if global_batch % world_size:
        lower = max(world_size, global_batch - global_batch % world_size)
        raise ConfigError(
            f"The 'train.batch_size' parameter ({global_batch}) is the global batch and must divide evenly among"
            f" the {world_size} devices. Use a multiple of {world_size}, such as {lower} or {lower + world_size}."
        )
    return global_batch // world_size


def _shard_world(loader) -> int:
    return int(getattr(getattr(loader, "sampler", None), "shard_world", 1))


def gather_items(local: Sequence[Any], loader) -> list[Any]:
    """Per-sample results of an evaluation ``loader`` that yields one rank's share of a split
    (:class:`headstart.data.shard.ShardSampler`), gathered from every rank in the split's order;
    ``local`` itself for an unsharded loader."""
    if _shard_world(loader) <= 1:
        return list(local)
    return interleave(all_gather_object(list(local)))


def gather_rows(local, loader):
    """:func:`gather_items` for a tensor whose rows are the samples (on the CPU)."""
    import torch

    world_size = _shard_world(loader)
    if world_size <= 1:
        return local
    parts = all_gather_object(local.cpu())
    out = torch.empty((sum(len(p) for p in parts), *local.shape[1:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        out[r::world_size] = part
    return out


def launch(fn: Callable[..., Any], args: Sequence[Any], nprocs: int, *, run_id: str = "headstart") -> dict[int, Any]:
    """Run ``fn(*args)`` in ``nprocs`` worker processes on this machine through torch's elastic
    launcher (what ``torchrun --standalone --nproc-per-node N`` does), and return each rank's
    result. ``fn`` must be importable by name (the workers are spawned). A worker that fails stops
    the others at once (the launcher's failure propagation) and raises :class:`DistributedError`
    naming the first rank that failed and its error."""
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nprocs,
        run_id=f"{run_id}-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    try:
        return elastic_launch(config, _run_recorded)(fn, *args)
    except ChildFailedError as exc:
        raise DistributedError(_failure_summary(exc.failures, nprocs)) from None


# what a rank says when it was left waiting by a peer that died: a consequence, not the cause
_PEER_LOST = (
    "Connection closed by peer",
    "Connection reset by peer",
    "DistBackendError",
    "NCCL communicator was aborted",
    "Broken pipe",
    "Signal 15 (SIGTERM)",
)


def _failure_summary(failures: dict, nprocs: int) -> str:
    """``Rank R of N failed: <its error>``, R being the rank whose failure is the cause: the first
    whose error is not a lost connection to a peer (the others then fail in their collectives)."""
    texts = {rank: _failure_text(f) for rank, f in failures.items()}
    causes = [r for r in sorted(texts) if not any(p in texts[r] for p in _PEER_LOST)]
    rank = causes[0] if causes else min(failures, key=lambda r: (failures[r].timestamp, r))
    others = sorted(r for r in texts if r != rank)
    tail = f" (then rank(s) {', '.join(map(str, others))} stopped as well)" if others else ""
    return f"Rank {rank} of {nprocs} failed: {texts[rank]}{tail}"


def _failure_text(failure) -> str:
    message = failure.message
    if isinstance(message, dict):  # the error file's {"message": ..., "extraInfo": {...}}
        message = message.get("message", message)
    text = str(message).strip()
    if "To enable traceback see" in text:  # no error file: it died before or outside headstart's code
        text = (
            f"the worker process exited with code {failure.exitcode} without a Python error report (its output"
            " above says why). A Python script that calls headstart.fit(devices=N) must do so under"
            " `if __name__ == '__main__':` (the workers are spawned and import the script)"
        )
    if failure.exitcode is not None and failure.exitcode < 0 and "Signal" not in text:
        text = f"{text} (exit code {failure.exitcode})"
    return text


def _run_recorded(fn: Callable[..., Any], *args: Any) -> Any:
    """A worker's entry point: ``fn(*args)`` under torch's ``record``, so the worker's exception
    (type, message, traceback) reaches the launcher instead of only an exit code."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(fn)(*args)
