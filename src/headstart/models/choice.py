"""The ``model: auto`` rule: a curated candidate by data size and device, preferring one whose
weights are available offline.

Above :mod:`headstart.models.zoo` (the candidates) and :mod:`headstart.models.resolve` (where weights
are found), which both stay free of it. Importing this module does not import torch or timm.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from headstart.errors import ConfigError
from headstart.models.resolve import has_offline_weights
from headstart.models.sources import KNOWN_SOURCES
from headstart.models.zoo import CPU_CANDIDATES, GPU_CANDIDATES, _is_gpu

__all__ = ["AutoChoice", "choose_model", "auto_model"]

log = logging.getLogger("headstart.models")


@dataclass(frozen=True)
class AutoChoice:
    name: str
    reason: str
    offline: bool
    """Whether weights for ``name`` were found without downloading."""


def _preference(n_train: int, gpu: bool) -> list[str]:
    if gpu:
        first = ["convnext_small"] if n_train >= 50_000 else ["convnext_tiny"]
        rest = [c.name for c in sorted(GPU_CANDIDATES, key=lambda c: -c.top1)]
        cpu = [c.name for c in sorted(CPU_CANDIDATES, key=lambda c: -c.top1)]
        order = first + rest + cpu
    else:
        first = ["tf_efficientnet_lite2"] if n_train < 2_000 else ["tf_efficientnet_lite0"]
        rest = [c.name for c in sorted(CPU_CANDIDATES, key=lambda c: -c.top1)]
        order = first + rest
    return list(dict.fromkeys(order))


def choose_model(
    n_train: int, device: str, store: str | os.PathLike | None = None
) -> AutoChoice:
    """The ``model: auto`` rule, with the reason for the choice.

    1. Ideal pick from data size and device:
       CPU: fewer than 2,000 training images -> ``tf_efficientnet_lite2`` (feature quality matters
       most with little data, and few images keep the 260 px model cheap); otherwise
       ``tf_efficientnet_lite0`` (compute grows with the data; 224 px, 4.7 M parameters).
       GPU: ``convnext_tiny`` (ImageNet-12k pretraining transfers well), ``convnext_small`` from
       50,000 training images.
    2. If the ideal pick's weights are not available offline (explicit store, HF cache, torch hub
       cache), take the first candidate that has them, in the order: the other candidates of the
       device by top-1, then (GPU only) the CPU candidates by top-1.
    3. If no candidate has offline weights, keep the ideal pick; resolving its weights later raises
       WeightsNotFoundError with the commands that fix it.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 0:
        raise ConfigError(f"The 'n_train' parameter must be an int in [0, inf). Got {n_train!r}.")
    gpu = _is_gpu(device)
    order = _preference(n_train, gpu)
    ideal = order[0]
    kind = "GPU" if gpu else "CPU"
    size = f"{n_train} training images on {kind}"
    for name in order:
        if has_offline_weights(name, store_root=store):
            if name == ideal:
                return AutoChoice(name, f"{name}: the default for {size}; weights found offline.", True)
            return AutoChoice(
                name,
                f"{name}: the default for {size} would be {ideal}, but no weights for it were found"
                f" offline; {name} is the best candidate that has them."
                f" (Import {ideal}'s weights or pass --allow-download to use it.)",
                True,
            )
    fetchable = ideal if ideal in KNOWN_SOURCES else "tf_efficientnet_lite0"
    return AutoChoice(
        ideal,
        f"{ideal}: the default for {size}. No candidate has weights offline; run"
        f" `headstart weights fetch {fetchable}` (or import a file with `headstart weights import"
        " FILE --model NAME`) or pass --allow-download.",
        False,
    )


def auto_model(n_train: int, device: str, store: str | os.PathLike | None = None) -> str:
    """The model name ``model: auto`` resolves to; see :func:`choose_model` for the rule."""
    choice = choose_model(n_train, device, store)
    log.info("model=auto -> %s", choice.reason)
    return choice.name
