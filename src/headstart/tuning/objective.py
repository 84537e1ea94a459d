"""One trial of a study: ``headstart.api.fit`` with the sampled config, in its own trial folder.

The per-epoch validation metric goes to Optuna through a Trainer callback, which raises
``optuna.TrialPruned`` when the pruner says so. Failures that belong to one config (a diverging
loss, running out of memory) become :class:`TrialFailed`, which the study catches: the trial is
recorded as failed with its reason and the study goes on. Anything else is a bug or a problem of
the setup (missing weights, unreadable data) and stops the study.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Mapping

from headstart.errors import HeadstartError
from headstart.train.callbacks import Callback
from headstart.tuning.space import SearchSpace, apply_params

__all__ = ["TrialFailed", "PruningCallback", "Objective", "best_of", "worker_id", "MAXIMIZE"]

MAXIMIZE = {"val_accuracy": True, "val_balanced_accuracy": True, "val_macro_f1": True, "val_loss": False}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialFailed(HeadstartError):
    """A trial's config could not be trained (NaN loss, out of memory); the study goes on."""


def best_of(history: list[Mapping[str, Any]], metric: str) -> float:
    values = [float(r[metric]) for r in history if r.get(metric) is not None and math.isfinite(float(r[metric]))]
    if not values:
        return float("nan")
    return max(values) if MAXIMIZE[metric] else min(values)


class PruningCallback(Callback):
    """Reports ``metric`` after every epoch to the Optuna trial and prunes when told to."""

    def __init__(self, trial, metric: str):
        self.trial = trial
        self.metric = metric

    def on_epoch_end(self, trainer, row):
        import optuna

        value = float(row[self.metric])
        if not math.isfinite(value):
            from headstart.train.loop import TrainingDiverged

            raise TrainingDiverged(f"The validation metric {self.metric} became {value} at epoch {row['epoch']}.")
        self.trial.report(value, step=int(row["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} with {self.metric}={value:.4f}")


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Objective:
    """Callable for ``study.optimize``: samples ``space``, trains in ``trials_dir/trial-NNNN``,
    returns the best validation ``metric`` over the epochs."""

    def __init__(self, base: Mapping[str, Any], space: SearchSpace, trials_dir: str | Path, metric: str):
        self.base = dict(base)
        self.space = space
        self.trials_dir = Path(trials_dir)
        self.metric = metric

    def trial_config(self, params: Mapping[str, Any], out: Path) -> dict[str, Any]:
        import copy

        tree = copy.deepcopy(self.base)
        apply_params(tree, self.space.fixed)
        apply_params(tree, params)
        tree.setdefault("train", {})["monitor"] = self.metric
        tree["out"] = str(out)
        tree["resume"] = False
        return tree

    def __call__(self, trial) -> float:
        from headstart.api import fit
        from headstart.train.loop import TrainingDiverged

        trial.set_user_attr("worker", worker_id())  # first, so a resume can tell orphaned trials
        params = self.space.suggest(trial)
        out = self.trials_dir / f"trial-{trial.number:04d}"
        if out.exists():  # a folder left by an interrupted attempt with this number: ours to replace
            shutil.rmtree(out)
        trial.set_user_attr("run_dir", str(out))
        try:
            result = fit(config=self.trial_config(params, out), verbose=False, callbacks=[PruningCallback(trial, self.metric)])
        except TrainingDiverged as exc:
            trial.set_user_attr("fail_reason", f"diverged: {exc}")
            raise TrialFailed(f"trial {trial.number} diverged: {exc}") from exc
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            trial.set_user_attr("fail_reason", f"out of memory: {exc}")
            raise TrialFailed(f"trial {trial.number} ran out of memory: {exc}") from exc
        finally:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        value = best_of(result.history, self.metric)
        if math.isnan(value):
            trial.set_user_attr("fail_reason", f"no finite {self.metric} in any epoch")
            raise TrialFailed(f"trial {trial.number} produced no finite {self.metric}")
        trial.set_user_attr("epochs_run", len(result.history))
        trial.set_user_attr("test_accuracy", float(result.metrics.get("accuracy", float("nan"))))
        trial.set_user_attr("fit_seconds", float(result.metrics.get("fit_seconds", 0.0)))
        return value
