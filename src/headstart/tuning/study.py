"""``headstart.tune(data, ...)``: a budgeted Optuna study whose trials are ``headstart fit`` runs.

```
runs/tune-NAME/
  tune.json          the study's settings (data, base config, space, budget, sampler, storage)
  study.db           the Optuna storage (SQLite) unless --storage names another database
  trials/trial-NNNN/ one fit run folder per trial
  trials.csv         trial, state, value, params, duration, reason
  best.yaml          the best config; `headstart fit --config best.yaml` accepts it
  plots/             optimisation history, parameter importances, parallel coordinates
  best/              the run folder (model, metrics) of the best config
```

The default config (headstart's own choices for this dataset) is always the first trial, so tuning
never returns something worse than not tuning. Several processes (``workers``, or ``headstart
tune`` on other machines with the same ``storage`` and ``study``) share one study. A study
interrupted at any moment resumes from ``tune.json`` and its storage: finished trials are kept and
the trials that were running are queued again.

The timeout holds inside a trial too: a trial still training at the deadline stops at the end of
its current epoch (recorded COMPLETE with its best value so far and ``stopped: timeout``, or PRUNED
when it had not finished an epoch), and no trial starts after it. The budget counts from the start
of :func:`tune` (model choice and data loading included); the final training of the best config
(``final=True``, ``fit --tune``) comes after it and is not part of it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from headstart._io import atomic_write_json
from headstart._validation import check_choice, check_number
from headstart.errors import ConfigError, HeadstartError, RunFolderError
from headstart.tasks import get_task
from headstart.tuning import progress as _clock
from headstart.tuning.outputs import TuneResult
from headstart.tuning.progress import Progress, parse_duration, trial_counts
from headstart.tuning.samplers import PRUNERS, SAMPLERS, grid_size, make_sampler
from headstart.tuning.space import SearchSpace, load_space, parse_space, saved_space
from headstart.tuning.storage import SETTINGS_FILE, open_study, read_settings, requeue_interrupted_here, safe_url

__all__ = ["TuneResult", "tune", "fit_with_tuning", "run_worker", "open_study", "read_settings"]



def _default_dir(data_path: Path) -> Path:
    """``runs/tune-<dataset name>``, numbered when it already holds something."""
    from headstart.run_folder import default_run_dir

    return default_run_dir(data_path, prefix="tune-")


def _claimed(study) -> int:
    """Trials that count against the budget: finished, and running (another worker's)."""
    c = trial_counts(study.get_trials(deepcopy=False))
    return c["done"] + c["running"]


def run_worker(run_dir: str | Path, *, quota: int | None, worker_index: int = 0, deadline: float | None = None,
               progress: Progress | None = None) -> int:
    """Run trials of the study in ``run_dir`` until ``quota`` trials ran here, the study's trial
    budget is used up, the grid is exhausted or ``deadline`` (epoch seconds) passed; a trial
    running at the deadline stops at the end of its epoch (see :class:`~headstart.tuning.objective.Objective`)."""
    from headstart.tuning.objective import Objective, TrialFailed

    run_dir = Path(run_dir)
    settings = read_settings(run_dir)
    study = open_study(settings, worker_index=worker_index)
    task = settings.get("task", "classify")  # studies from before detection were classification ones
    objective = Objective(settings["base"], saved_space(settings), run_dir / "trials", settings["metric"],
                          deadline=deadline, task=task)
    callbacks = [lambda s, t: progress.update(s)] if progress is not None else None
    budget = settings.get("trials")
    done = 0
    while quota is None or done < quota:
        # the first trial (the default config) runs even past the deadline: a study always has a result
        if deadline is not None and _clock.now() >= deadline and (done or trial_counts(study.get_trials())["done"]):
            break
        if budget is not None and _claimed(study) >= budget:
            break
        if hasattr(study.sampler, "is_exhausted") and study.sampler.is_exhausted(study):
            break
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=callbacks)
        done += 1
    return done


def tune(
    data: str | Path | None = None,
    *,
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    space: str | Path | Mapping[str, Any] | SearchSpace | None = None,
    trials: int | None = None,
    timeout: str | float | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    metric: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    resume: str | Path | None = None,
    out: str | Path | None = None,
    final: bool = True,
    final_dir: str | Path | None = None,
    grid_points: int = 3,
    verbose: bool = True,
    default_trial: bool = True,
    **flat: Any,
) -> TuneResult:
    """Search hyperparameters of ``headstart fit`` on ``data`` within a trial and/or time budget.

    Any task that ``fit`` trains: the task comes from the config (``task: auto``: from the data's
    layout), and with it the search space's names, the default ranges and the objective
    (``metric``, default the task's: ``val_accuracy`` for classification, ``val_map`` for
    detection). ``flat``/``config``/``overrides`` fix the base config as for
    :func:`headstart.fit`; ``space`` (a YAML file, a mapping or a :class:`SearchSpace`) says what
    is searched (default: ranges chosen from the dataset). ``trials`` counts finished trials of the whole study, across
    all workers. ``timeout`` (``'20m'``, seconds, counted from this call) is a deadline for the
    whole study: no trial starts after it, and a trial still training then stops at the end of its
    current epoch (COMPLETE with its best value so far and the user attr ``stopped='timeout'``, or
    PRUNED without a finished epoch). The first trial of a study always trains at least one epoch,
    so a study always has a result. The final training of the best config (``final``) is not part
    of the timeout: it runs after it, in full. ``resume`` continues the study in that folder.
    ``default_trial=False`` leaves out the default config as trial 0 (for a plain random-search
    baseline, as ``benchmarks/tune_efficiency.py`` runs). Returns a :class:`TuneResult`.
    """
    from headstart._console import make_console
    from headstart._imports import optional_import

    started = _clock.now()  # the timeout counts model choice and data loading too
    optional_import("optuna", extra="tune")
    console = make_console(verbose)
    seconds = parse_duration(timeout)
    workers = check_number("workers", workers, kind=int, low=1, closed="left")
    if trials is not None:
        trials = check_number("trials", trials, kind=int, low=1, closed="left")
    if resume is not None:
        run_dir = Path(resume)
        settings = read_settings(run_dir)
        if trials is not None:
            settings["trials"] = trials
        console.print(f"resuming study {settings['study']!r} in {run_dir}")
    else:
        run_dir, settings = _new_study(data, config, overrides, space, trials, seconds, sampler, pruner, metric,
                                       storage, study, out, grid_points, flat, console)
    settings["timeout"] = seconds
    atomic_write_json(run_dir / SETTINGS_FILE, settings)

    study_obj = open_study(settings)
    if resume is None and default_trial and settings["default_point"] is not None \
            and not study_obj.get_trials(deepcopy=False):
        study_obj.enqueue_trial(settings["default_point"], user_attrs={"default": True}, skip_if_exists=True)
    requeued = requeue_interrupted_here(study_obj)
    if requeued:
        console.print(f"{requeued} interrupted trial(s) queued again")
    budget = settings.get("trials")
    done = trial_counts(study_obj.get_trials(deepcopy=False))["done"]
    remaining = None if budget is None else max(0, budget - done)
    deadline = None if seconds is None else started + seconds
    progress = Progress(console, settings["metric"], budget=budget, deadline=deadline, workers=workers)
    progress._seen.update(t.number for t in study_obj.get_trials(deepcopy=False) if t.state.is_finished())
    console.print(
        f"study {settings['study']!r}: {settings['sampler']} sampler, {settings['pruner']} pruner, "
        f"{settings['metric']}, {done} trial(s) done"
        + (f", {remaining} to go" if remaining is not None else "")
        + (f", timeout {timeout}" if seconds else "") + f", {workers} worker(s), storage {safe_url(settings['storage'])}"
    )
    if workers == 1:
        run_worker(run_dir, quota=remaining, deadline=deadline, progress=progress)
    else:
        _run_worker_processes(run_dir, workers, remaining, deadline, study_obj, progress)
    progress.update(study_obj)

    from headstart.tuning.outputs import write_outputs

    return write_outputs(run_dir, settings, study_obj, console=console, final=final,
                         final_dir=Path(final_dir) if final_dir is not None else run_dir / "best")


def _new_study(data, config, overrides, space, trials, seconds, sampler, pruner, metric, storage, study, out,
               grid_points, flat, console) -> tuple[Path, dict[str, Any]]:
    from headstart._version import __version__
    from headstart.config import build_config
    from headstart.workflows.fit import resolve_task

    check_choice("sampler", sampler, SAMPLERS)
    check_choice("pruner", pruner, PRUNERS)
    grid_points = check_number("grid_points", grid_points, kind=int, low=2, closed="left")
    cfg = build_config(data, config=config, overrides=overrides, **{k: v for k, v in flat.items() if k != "out"})
    if cfg.data.path is None:
        raise ConfigError("The 'data' parameter is required: pass a folder of images or a CSV file (or --resume RUN_DIR).")
    cfg = resolve_task(cfg)  # before to_dict: a detection config keeps its `detect` section
    task = get_task(cfg.task)
    rules = task.space()
    metric = task.objective if metric is None else metric
    check_choice("metric", metric, tuple(task.metrics))
    index, n_train = rules.load(cfg)
    device_type = _device_type(cfg)
    if isinstance(space, SearchSpace):
        search = space
    elif isinstance(space, Mapping):
        search = parse_space(space, task=task.name)
    elif space is not None:
        search = load_space(space, task=task.name)
    else:
        search = parse_space(rules.default_spec(cfg, rules.resolve(cfg, index, n_train, device_type), n_train),
                             source="The default search space (values set in the config are not searched)",
                             task=task.name)
    if sampler == "grid" and trials is None:
        trials = grid_size(search, grid_points) + 1
    if trials is None and seconds is None:
        trials = 20
    make_sampler(sampler, search, n_trials=trials, grid_points=grid_points)  # fail now on a space it cannot search
    run_dir = Path(out) if out is not None else _default_dir(Path(cfg.data.path))
    if (run_dir / SETTINGS_FILE).exists():
        raise RunFolderError(
            f"{str(run_dir)!r} already holds a study. Continue it with --resume {run_dir}, or choose another --out."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    base = cfg.to_dict()
    base["data"]["path"] = str(Path(cfg.data.path).resolve())
    default_cfg = build_config(config=base)
    if default_cfg.model.name == "auto" and rules.choose_model_once:
        # once for the whole study, the way `fit --model auto` chooses (a saved `headstart rank`
        # table, else a quick rank written to <study>/rank, else choose_model); every trial then
        # trains the chosen model instead of ranking again
        from headstart.engine.device import resolve_device
        from headstart.select import auto

        dev = resolve_device(cfg.train.device)
        name, size, reason = auto.choose_by_rank(default_cfg, index, dev, run_dir, not console.quiet)
        base["model"]["name"] = name
        if size is not None and base["model"].get("image_size") is None:
            base["model"]["image_size"] = size
        default_cfg = build_config(config=base)
        console.print(f"model auto: {reason}")
    defaults = rules.default_point(rules.resolve(default_cfg, index, n_train, device_type))
    point = search.default_point(defaults, complete_grid=grid_points if sampler == "grid" else None)
    if sampler == "grid" and grid_size(search, grid_points) == 1:
        # one grid point is the whole search; and Optuna's GridSampler fails on an enqueued trial
        # when a single grid point is left (KeyError 'grid_id'), so the default is not queued
        point = None
    console.print(f"{n_train} training images; searching {', '.join(search.params)}")
    settings = {
        "headstart_version": __version__,
        "task": task.name,
        "data": base["data"]["path"],
        "n_train": n_train,
        "base": base,
        "space": search.to_dict(),
        "default_point": point,
        "trials": trials,
        "sampler": sampler,
        "pruner": pruner,
        "metric": metric,
        "seed": cfg.train.seed,
        "grid_points": grid_points,
        "storage": storage or f"sqlite:///{(run_dir / 'study.db').resolve()}",
        "study": study or run_dir.resolve().name,
    }
    return run_dir, settings


def _device_type(cfg) -> str:
    """'cuda', 'mps' or 'cpu': what the trials will train on (detection's defaults depend on it)."""
    from headstart.engine.device import resolve_device

    return resolve_device(cfg.train.device).device.type


def _run_worker_processes(run_dir: Path, workers: int, remaining: int | None, deadline: float | None, study, progress) -> None:
    """``workers`` local processes on the same storage; each runs its share of the remaining trials."""
    import torch

    from headstart.tuning.gpus import worker_environment

    quotas = [None] * workers if remaining is None else [remaining // workers + (i < remaining % workers) for i in range(workers)]
    gpus = torch.cuda.device_count()
    procs = []
    for i, quota in enumerate(quotas):
        if quota == 0:
            continue
        cmd = [sys.executable, "-m", "headstart.tuning.worker", str(run_dir), "--index", str(i),
               "--workers", str(workers)]
        if quota is not None:
            cmd += ["--quota", str(quota)]
        if deadline is not None:
            cmd += ["--deadline", repr(deadline)]
        procs.append(subprocess.Popen(cmd, env=worker_environment(i, gpus)))  # one GPU per worker when there are several
    try:
        while any(p.poll() is None for p in procs):
            progress.update(study)
            time.sleep(1.0)
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        raise HeadstartError(
            f"{len(bad)} of {len(procs)} worker process(es) stopped with an error (exit codes {bad}); see their "
            f"messages above. Finished trials are kept: continue with `headstart tune --resume {run_dir}`."
        )


def fit_with_tuning(data, budget, *, config=None, overrides=(), verbose=True, **kwargs):
    """``headstart fit DATA --tune 15m``: tune for that long in ``<out>/tune``, then put the run
    folder of the best config in ``<out>`` and return it as a :class:`~headstart.workflows.result.FitResult`.

    The budget is the study's timeout only: the final training of the best config (a copy of its
    trial's folder, or a full training when that trial was stopped at the deadline) comes after."""
    from headstart.config import build_config
    from headstart.run_folder import default_run_dir
    from headstart.workflows.result import load

    seconds = parse_duration(budget, param="tune")
    cfg = build_config(data, config=config, overrides=overrides, **kwargs)
    if cfg.data.path is None:
        raise ConfigError("The 'data' parameter is required with --tune: pass a folder of images or a CSV file.")
    out = Path(cfg.out) if cfg.out is not None else default_run_dir(Path(cfg.data.path))
    flat = {k: v for k, v in kwargs.items() if k not in ("out", "resume")}
    tune(data, config=config, overrides=overrides, timeout=seconds, out=out / "tune", final_dir=out,
         verbose=verbose, **flat)
    return load(out)
