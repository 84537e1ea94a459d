"""``headstart.fit`` and ``headstart.load``: the Python API, and what the CLI's ``fit`` calls.

``fit`` runs the fit workflow (:mod:`headstart.workflows.fit`) for the config's task, or with
``tune=`` a budgeted study first (:func:`headstart.tuning.study.fit_with_tuning`). This module sits
above both, so neither imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from headstart.config import FitConfig
from headstart.workflows.result import FitResult, load

__all__ = ["FitResult", "fit", "load"]


def fit(
    data: str | Path | None = None,
    *,
    config: str | Path | Mapping[str, Any] | FitConfig | None = None,
    overrides: Sequence[str] = (),
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    tune: str | float | None = None,
    **kwargs: Any,
) -> FitResult:
    """Fine-tune a pretrained model on a folder of images and evaluate it.

    ``kwargs`` are the flat parameters of :data:`headstart.config.FLAT_KEYS` (``model``,
    ``strategy``, ``epochs``, ``lr``, ``augment``, ``image_size``, ``out``, ...), the same as the CLI
    flags. Returns a :class:`FitResult`; everything is also written to the run folder.

    ``callbacks`` (:class:`headstart.engine.callbacks.Callback`) are appended to the trainer's own.
    ``tune`` (a budget such as ``'15m'``) first runs :func:`headstart.tuning.tune` for that long in
    ``<out>/tune``, then puts the model of the best config in ``<out>``.

    ``devices=N`` trains on N worker processes (DistributedDataParallel; docs/architecture.md,
    "Distributed training"): they are spawned, so a script must call ``fit`` under
    ``if __name__ == "__main__":``, and ``callbacks`` cannot go with them (run the script under
    ``torchrun`` instead, where every rank calls ``fit`` with its callbacks).
    """
    if tune is not None:
        from headstart.tuning.study import fit_with_tuning

        return fit_with_tuning(data, tune, config=config, overrides=overrides, verbose=verbose, **kwargs)
    from headstart.workflows.fit import fit as run_fit

    return run_fit(data, config=config, overrides=overrides, verbose=verbose, callbacks=callbacks, **kwargs)
