"""One trial of a study: ``headstart.workflows.fit.fit`` with the sampled config, in its own trial folder.

The per-epoch validation metric goes to Optuna through a Trainer callback, which raises
``optuna.TrialPruned`` when the pruner says so. Failures that belong to one config (a diverging
loss, running out of memory) become :class:`TrialFailed`, which the study catches: the trial is
recorded as failed with its reason and the study goes on. Anything else is a bug or a problem of
the setup (missing weights, unreadable data) and stops the study.

The study's deadline holds inside a trial: :class:`DeadlineCallback` checks it at the end of each
epoch and stops the training there (the fit still evaluates and saves what it has, so the time
spent is not wasted and the trial completes with its best value so far, marked ``stopped:
timeout``); a trial whose setup outlasted the deadline, in a study that already has a result, is
pruned before its first epoch.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Mapping

from headstart.engine.callbacks import Callback
from headstart.errors import HeadstartError
from headstart.tasks import get_task
from headstart.tuning import progress as _clock
from headstart.tuning.space import SearchSpace, apply_params

__all__ = ["TrialFailed", "PruningCallback", "DeadlineCallback", "DeadlineReached", "Objective", "best_of",
           "worker_id", "metric_direction"]


def metric_direction(metric: str, task: str = "classify") -> str:
    """'max' or 'min': from the task's table of validation metrics (:mod:`headstart.tasks`)."""
    return get_task(task).direction(metric)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialFailed(HeadstartError):
    """A trial's config could not be trained (NaN loss, out of memory); the study goes on."""


class DeadlineReached(HeadstartError):
    """The study's deadline passed before the trial finished an epoch."""


def best_of(history: list[Mapping[str, Any]], metric: str, task: str = "classify") -> float:
    values = [float(r[metric]) for r in history if r.get(metric) is not None and math.isfinite(float(r[metric]))]
    if not values:
        return float("nan")
    return max(values) if metric_direction(metric, task) == "max" else min(values)


class PruningCallback(Callback):
    """Reports ``metric`` to the Optuna trial after every epoch through the backbone and prunes
    when told to.

    The step is the number of backbone epochs so far, so an lp-ft trial after k fine-tuning epochs
    is compared with a full fine-tuning trial after k epochs. Epochs of a probe on cached features
    are not reported: they cost little, and their accuracy says nothing about the fine-tuning
    hyperparameters (lr, epochs, augmentation) that the pruner would then judge. A linear-probe
    trial is therefore never pruned (it is cheap throughout)."""

    def __init__(self, trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.step = 0

    def on_epoch_end(self, trainer, row):
        import optuna

        value = float(row[self.metric])
        if not math.isfinite(value):
            from headstart.engine.trainer import TrainingDiverged

            raise TrainingDiverged(f"The validation metric {self.metric} became {value} at epoch {row['epoch']}.")
        if trainer.stages[trainer.state.stage_index].on_features:
            return
        self.step += 1
        self.trial.report(value, step=self.step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} with {self.metric}={value:.4f}")


class DeadlineCallback(Callback):
    """Stops training at the study's ``deadline`` (epoch seconds of :func:`headstart.tuning.progress.now`).

    Checked at the end of each epoch: once it has passed, the current stage and every later one
    stop (``stopped`` is then True, unless that epoch was the fit's last anyway), so the fit goes
    on to evaluate and save the best weights so far. At the start of the first stage, when
    ``may_skip`` (the study already has a completed trial), a passed deadline raises
    :class:`DeadlineReached` instead: no epoch to keep.
    """

    def __init__(self, deadline: float, *, may_skip: bool = False):
        self.deadline = float(deadline)
        self.may_skip = may_skip
        self.stopped = False

    def passed(self) -> bool:
        return _clock.now() >= self.deadline

    def on_stage_start(self, trainer, stage):
        if self.stopped:
            trainer.state.stop_stage = True
        elif self.may_skip and not trainer.state.history and self.passed():
            raise DeadlineReached("the study's deadline passed before the trial's first epoch")

    def on_epoch_end(self, trainer, row):
        if self.stopped or not self.passed():
            return
        state = trainer.state
        last_stage = state.stage_index >= len(trainer.stages) - 1
        if last_stage and (state.stop_stage or state.epoch >= trainer.stages[state.stage_index].epochs):
            return  # the fit ends after this epoch anyway: nothing was cut short
        self.stopped = True
        state.stop_stage = True


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
    returns the best validation ``metric`` over the epochs; ``task`` is any task that ``fit``
    trains (its names in the space, its metric table). With a ``deadline`` (epoch seconds), a
    trial still training then stops at the end of its epoch (see :class:`DeadlineCallback`)."""

    def __init__(self, base: Mapping[str, Any], space: SearchSpace, trials_dir: str | Path, metric: str, *,
                 deadline: float | None = None, task: str = "classify"):
        self.task = task
        self.base = dict(base)
        self.space = space
        self.trials_dir = Path(trials_dir)
        self.metric = metric
        self.deadline = deadline

    def trial_config(self, params: Mapping[str, Any], out: Path) -> dict[str, Any]:
        import copy

        tree = copy.deepcopy(self.base)
        apply_params(tree, self.space.fixed, task=self.task)
        apply_params(tree, params, task=self.task)
        model, chosen = tree.setdefault("model", {}), self.base.get("model", {})
        if model.get("name") == "auto" and chosen.get("name", "auto") != "auto":
            # a space that sets `model: auto` means the model tune chose once for the study: a
            # trial must not rank the candidates again
            model["name"] = chosen["name"]
            if model.get("image_size") is None:
                model["image_size"] = chosen.get("image_size")
        tree.setdefault("train", {})["monitor"] = self.metric
        tree["out"] = str(out)
        tree["resume"] = False
        return tree

    def _deadline_callback(self, trial) -> DeadlineCallback | None:
        if self.deadline is None:
            return None
        from optuna.trial import TrialState

        # the first completed trial of a study always trains (at least one epoch): a study has a result
        has_result = bool(trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return DeadlineCallback(self.deadline, may_skip=has_result)

    def __call__(self, trial) -> float:
        import optuna

        from headstart.engine.trainer import TrainingDiverged
        from headstart.workflows.fit import fit

        trial.set_user_attr("worker", worker_id())  # first, so a resume can tell orphaned trials
        params = self.space.suggest(trial)
        out = self.trials_dir / f"trial-{trial.number:04d}"
        if out.exists():  # a folder left by an interrupted attempt with this number: ours to replace
            shutil.rmtree(out)
        trial.set_user_attr("run_dir", str(out))
        deadline = self._deadline_callback(trial)
        callbacks = [PruningCallback(trial, self.metric)] + ([deadline] if deadline is not None else [])
        try:
            result = fit(config=self.trial_config(params, out), verbose=False, callbacks=callbacks)
        except DeadlineReached as exc:
            trial.set_user_attr("stopped", "timeout")
            raise optuna.TrialPruned(str(exc)) from exc
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
        value = best_of(result.history, self.metric, self.task)
        if math.isnan(value):
            trial.set_user_attr("fail_reason", f"no finite {self.metric} in any epoch")
            raise TrialFailed(f"trial {trial.number} produced no finite {self.metric}")
        if deadline is not None and deadline.stopped:
            trial.set_user_attr("stopped", "timeout")
        trial.set_user_attr("epochs_run", len(result.history))
        key = get_task(self.task).test_metric  # accuracy, map: the objective's metric on the evaluated split
        test_value = result.metrics.get(key)
        trial.set_user_attr(f"test_{key}", float("nan") if test_value is None else float(test_value))
        trial.set_user_attr("fit_seconds", float(result.metrics.get("fit_seconds", 0.0)))
        return value
