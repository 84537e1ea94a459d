"""Optuna samplers and pruners by name, configured for headstart's search spaces.

* ``tpe`` (default): Optuna's TPE, with a short random start-up so that it models early.
* ``random``: independent uniform/log-uniform sampling (the baseline to beat).
* ``grid``: every combination; numeric ranges are spread over ``grid_points`` values.
* ``cmaes``: CMA-ES over the numeric ranges (categoricals are sampled at random, as Optuna does);
  it needs at least two numeric ranges and the ``cmaes`` package.

Pruners watch the per-epoch validation metric: ``median`` (stop a trial below the median of earlier
trials at the same epoch), ``halving`` (asynchronous successive halving), ``hyperband`` and ``none``.
"""

from __future__ import annotations

from typing import Any

from headstart._validation import check_choice
from headstart.errors import ConfigError
from headstart.tuning.space import SearchSpace

__all__ = ["SAMPLERS", "PRUNERS", "make_sampler", "make_pruner", "grid_size"]

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "halving", "hyperband", "none")


def grid_size(space: SearchSpace, points: int = 3) -> int:
    n = 1
    for p in space.params.values():
        n *= len(p.grid_values(points))
    return n


def make_sampler(name: str, space: SearchSpace, *, seed: int | None = 0, n_trials: int | None = None, grid_points: int = 3) -> Any:
    import optuna

    check_choice("sampler", name, SAMPLERS)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {n: p.grid_values(grid_points) for n, p in space.params.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "cmaes":
        from headstart._imports import optional_import

        optional_import("cmaes", extra="tune")
        numeric = space.numeric()
        if len(numeric) < 2:
            raise ConfigError(
                f"The 'cmaes' sampler needs at least two numeric ranges in the search space; it has "
                f"{len(numeric)} ({', '.join(numeric) or 'none'}). Use --sampler tpe or add low/high ranges."
            )
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=1, warn_independent_sampling=False)
    startup = 10 if n_trials is None else max(2, min(10, n_trials // 4))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def make_pruner(name: str, *, n_trials: int | None = None) -> Any:
    import optuna

    check_choice("pruner", name, PRUNERS)
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        # epochs are numbered from 1; the first one (LR warm-up) is noisy, so never prune on it
        startup = 2 if n_trials is None else max(1, min(5, n_trials // 5))
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=2)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
