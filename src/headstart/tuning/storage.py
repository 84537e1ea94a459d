"""Where a study lives: ``tune.json`` (its settings) and the Optuna RDB storage it names.

* :func:`read_settings` reads a study folder's ``tune.json``;
* :func:`make_storage` / :func:`open_study` open the storage (SQLite by default, any SQLAlchemy URL)
  with heartbeats, so a trial whose worker died on another machine is found and queued again;
* :func:`requeue_interrupted_here` does the same on resume for workers of this machine, by pid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from headstart.errors import RunFolderError
from headstart.tasks import get_task
from headstart.tuning.samplers import make_pruner, make_sampler
from headstart.tuning.space import saved_space

__all__ = ["SETTINGS_FILE", "read_settings", "make_storage", "open_study", "requeue_interrupted_here", "safe_url"]

SETTINGS_FILE = "tune.json"


def read_settings(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / SETTINGS_FILE
    if not path.is_file():
        raise RunFolderError(
            f"{str(run_dir)!r} has no {SETTINGS_FILE}, so it is not a headstart tune folder. "
            "Pass the folder a previous `headstart tune` wrote (its --out)."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def make_storage(url: str):
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # concurrent workers on one SQLite file wait for the lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(
        url, engine_kwargs=engine_kwargs, heartbeat_interval=30, grace_period=120,
        heartbeat_stale_trial_callback=_requeue_stale,
    )


def _requeue_stale(study, trial) -> None:
    """A trial whose worker died (Optuna found no heartbeat and failed it): queue its params again;
    ``requeued_from`` marks the failed one as interrupted (a finished trial takes no new attrs)."""
    if trial.params:  # killed before sampling: nothing to repeat
        study.enqueue_trial(dict(trial.params), user_attrs={"requeued_from": trial.number})


def _quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_study(settings: Mapping[str, Any], *, worker_index: int = 0):
    """The study that ``settings`` (a ``tune.json``) names, created on first use; each worker's
    sampler gets its own seed."""
    import optuna

    _quiet_optuna()
    space = saved_space(settings)
    seed = settings.get("seed")
    sampler = make_sampler(settings["sampler"], space, seed=None if seed is None else seed + worker_index,
                           n_trials=settings.get("trials"), grid_points=settings.get("grid_points", 3))
    return optuna.create_study(
        storage=make_storage(settings["storage"]),
        study_name=settings["study"],
        sampler=sampler,
        pruner=make_pruner(settings["pruner"], n_trials=settings.get("trials")),
        direction="maximize" if get_task(settings.get("task", "classify")).direction(settings["metric"]) == "max"
        else "minimize",
        load_if_exists=True,
    )


def requeue_interrupted_here(study) -> int:
    """On resume: trials left RUNNING by a dead process of this machine are interrupted ones."""
    import socket

    from optuna.trial import TrialState

    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        w_host, _, pid = worker.rpartition(":")
        # no worker yet: the process died between creating the trial and starting it (a live
        # worker sets the attribute within milliseconds of creating its trial)
        if not worker or (w_host == host and pid.isdigit() and not _alive(int(pid))):
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "interrupted (worker stopped)")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            _requeue_stale(study, t)
            n += 1
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def safe_url(url: str) -> str:
    """The storage URL without its password, for display."""
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
