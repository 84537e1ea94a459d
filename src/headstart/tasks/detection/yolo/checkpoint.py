"""headstart's own checkpoint of a YOLO run, so that ``headstart fit --resume`` continues an
interrupted YOLO run without reading a pickle of Ultralytics.

Ultralytics resumes from its ``last.pt``, a full pickle (its model object, loaded with
``weights_only=False``): headstart never writes nor reads that file. Instead, at the end of every
epoch, the training driver (:mod:`~headstart.tasks.detection.yolo.train`) writes
``<run>/checkpoints/yolo-last.pt`` holding only tensors and plain values (dicts, lists, tuples,
strings, numbers), written with ``torch.save`` and read back with ``torch.load(weights_only=True)``,
PyTorch's restricted loader that builds nothing but those types and runs no code from the file
(the engine's own ``last.pt`` is read the same way). It holds what changes while Ultralytics trains:

* the model's weights (the live ones, not only the EMA as in Ultralytics' own checkpoints), the EMA
  weights and its update count, the optimizer's state, the grad scaler, Ultralytics' best fitness
  and its early-stopping counters;
* where the run is (stage, epoch, whether the stage ended), headstart's history rows and the best
  weights so far;
* Ultralytics' gradient accumulation: the batch of its last optimizer step and the gradients
  accumulated since, which its loop keeps in local variables and would restart at a resume.

* the states of Python's, NumPy's and torch's global RNGs at the epoch's end (tensors and ints,
  :func:`rng_state`), which Ultralytics draws its augmentations from: the resumed run restores them at
  the start of its first epoch (:func:`restore_rng`), so it draws what the uninterrupted run drew. The
  streams run on from Ultralytics' one seeding at start, as in a run without headstart: reseeding them
  at every epoch start from (seed, stage, epoch) also resumed exactly; it was replaced so that a run
  draws its augmentations as Ultralytics does (BENCHMARKS.md, "YOLO after resume support", where the
  open accuracy question is measured). The shuffling needs no state: the training driver draws each
  pass's permutation from (seed, stage, pass).

Restored by :func:`restore_trainer` (weights, optimizer, EMA, counters) and
:func:`restore_gradients`, at the points of Ultralytics' loop where the uninterrupted run holds the
same values. On a CPU (Ultralytics loads the batches in the main process there) the resumed run
repeats the uninterrupted one exactly (a test compares them). With DataLoader worker processes (on
a GPU: ``data.num_workers``, 8 by default) the augmentations are drawn in the workers, whose RNGs
headstart does not reseed per epoch: a resumed run then draws other augmentations than the
uninterrupted one would have (the weights, optimizer, schedule and shuffling still continue exactly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from headstart.errors import HeadstartError

__all__ = [
    "FORMAT",
    "CHECKPOINT_NAME",
    "trainer_state",
    "restore_trainer",
    "restore_gradients",
    "rng_state",
    "restore_rng",
    "write",
    "read",
]

FORMAT = "headstart-yolo-2"  # 2: the global RNG states (1 reseeded them per epoch instead)
CHECKPOINT_NAME = "yolo-last.pt"


def _plain(value: Any) -> Any:
    """Numbers as Python's (Ultralytics keeps some fitness values as NumPy scalars, which
    ``weights_only`` loading refuses)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _module(model):
    return getattr(model, "module", model)  # DDP / compile wrappers keep the model as .module


def trainer_state(
    tr, *, stage_index: int, stage_done: bool, history: list, best: Mapping[str, Any], outcome: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything :func:`restore_trainer` and :func:`restore_epoch_start` need, at the end of epoch
    ``tr.epoch`` of stage ``stage_index`` (``stage_done``: Ultralytics stops the stage there)."""
    grads = {
        name: p.grad.detach().cpu().clone() for name, p in _module(tr.model).named_parameters() if p.grad is not None
    }
    return {
        "format": FORMAT,
        "stage_index": stage_index,
        "epoch": int(tr.epoch),
        "stage_done": bool(stage_done),
        "history": [{k: _plain(v) for k, v in row.items()} for row in history],
        "best": {k: (v if k == "state" else _plain(v)) for k, v in best.items()},
        "outcome": {
            k: _plain(v) if not isinstance(v, dict) else {a: _plain(b) for a, b in v.items()}
            for k, v in outcome.items()
        },
        "model": {k: v.detach().cpu().clone() for k, v in _module(tr.model).state_dict().items()},
        "ema": {k: v.detach().cpu().clone() for k, v in tr.ema.ema.state_dict().items()},
        "ema_updates": int(tr.ema.updates),
        "optimizer": tr.optimizer.state_dict(),
        "scaler": tr.scaler.state_dict(),
        "best_fitness": _plain(tr.best_fitness),
        "stopper": {"best_fitness": _plain(tr.stopper.best_fitness), "best_epoch": int(tr.stopper.best_epoch)},
        "last_opt_step": int(tr._hs_last_opt_step),
        "grads": grads,
        "rng": rng_state(),
    }


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's (MT19937) and torch's CPU global RNG states as tensors and ints, so that
    ``torch.load(weights_only=True)`` reads them back (NumPy arrays and Python's tuples of ints
    above 2**31 would need an unpickler of their own)."""
    import random

    import numpy as np
    import torch

    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng(saved: Mapping[str, Any]) -> None:
    """The global RNG states :func:`rng_state` saved in ``saved`` (a checkpoint) put back."""
    import random

    import numpy as np
    import torch

    rng = saved["rng"]
    py, npy = rng["python"], rng["numpy"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(rng["torch"])


def restore_trainer(tr, saved: Mapping[str, Any]) -> None:
    """Into Ultralytics' trainer, after its setup (its ``resume_training`` hook): the optimizer,
    grad scaler, EMA, best fitness, early-stopping counters, and the epoch to start at. The model's
    own weights were loaded before the trainer was built."""
    from ultralytics.utils.torch_utils import ModelEMA

    optimizer = saved["optimizer"]
    for group, own in zip(optimizer["param_groups"], tr.optimizer.param_groups):
        group["fused"] = own.get("fused")  # the device, not the checkpoint, picks the kernel
    tr.optimizer.load_state_dict(optimizer)
    if saved.get("scaler"):
        tr.scaler.load_state_dict(saved["scaler"])
    tr.ema = ModelEMA(tr.model)
    tr.ema.ema.load_state_dict(saved["ema"])
    tr.ema.updates = saved["ema_updates"]
    tr.best_fitness = saved["best_fitness"]
    tr.stopper.best_fitness = saved["stopper"]["best_fitness"]
    tr.stopper.best_epoch = saved["stopper"]["best_epoch"]
    tr.start_epoch = saved["epoch"] + 1


def restore_gradients(tr, saved: Mapping[str, Any]) -> None:
    """At the start of the first resumed epoch (after Ultralytics zeroed the gradients): the
    gradients accumulated since the last optimizer step of the interrupted run."""
    params = dict(_module(tr.model).named_parameters())
    for name, grad in saved["grads"].items():
        params[name].grad = grad.to(params[name].device)


def write(path: Path, payload: Mapping[str, Any]) -> None:
    import torch

    from headstart._io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(dict(payload), tmp))


def read(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, through ``torch.load(weights_only=True)`` (no code runs)."""
    import torch

    if not path.is_file():
        raise HeadstartError(
            f"Cannot resume: no YOLO checkpoint at {str(path)!r} (headstart writes it after every epoch; the run"
            " stopped before its first epoch ended, or was made by a headstart without YOLO resume). Start the"
            " run again without --resume."
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise HeadstartError(
            f"Cannot resume from {str(path)!r}: checkpoint format {got!r} is not this headstart's ({FORMAT!r}). Start"
            " the run again in a new --out folder."
        )
    return payload
