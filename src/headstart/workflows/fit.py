"""``fit`` as a workflow, whatever the task: resolve the config and the run folder, then run the
task's steps (for classification :mod:`headstart.workflows.fit_classification`: data -> model ->
resolve every auto -> loaders -> train -> evaluate -> save). ``load`` opens a finished run folder.

The public ``headstart.fit`` (:mod:`headstart.api`) adds ``tune=`` on top; tune's trials call this
module's :func:`fit` directly.

Several processes (docs/architecture.md, "Distributed training"): under ``torchrun`` every rank
calls :func:`fit`; rank 0 resolves the config and creates the run folder, the others get both from
it. With ``train.devices`` > 1 and no launcher around, :func:`fit` resolves the config here and
starts the workers itself through torch's elastic launcher (:func:`run_worker` in each), then opens
the finished run folder. Either way the task's workflow runs with the process group up.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping, Sequence

from headstart.config import FitConfig, build_config, load_yaml
from headstart.config_flags import check_resume_arguments
from headstart.errors import ConfigError
from headstart.run_folder import RunFolder, default_run_dir
from headstart.workflows.result import FitResult, load

__all__ = ["FitResult", "fit", "load", "resolve_config", "FIT_WORKFLOWS"]

# task -> the module whose run(cfg, run, console, verbose, callbacks) carries out its fit
FIT_WORKFLOWS: dict[str, str] = {"classify": "headstart.workflows.fit_classification",
                                  "detect": "headstart.workflows.fit_detection"}


def resolve_config(data, config, overrides: Sequence[str], kwargs: Mapping[str, Any]) -> tuple[FitConfig, RunFolder]:
    """The validated config and its run folder: a new folder, or with ``resume`` the interrupted
    run's own folder and its saved config.yaml."""
    resume = bool(kwargs.get("resume"))
    if resume:
        out = kwargs.get("out")
        if out is None and isinstance(config, FitConfig):
            out = config.out
        if out is None:
            raise ConfigError("The 'resume' parameter needs the run folder to continue: pass --out RUN_DIR.")
        run = RunFolder.create(out, resume=True)
        check_resume_arguments(kwargs, overrides, config, data=data, saved=run.config_path)
        cfg = build_config(config=load_yaml(run.config_path))
        if kwargs.get("devices") is not None:  # the global batch keeps its meaning: any device count resumes
            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"devices": kwargs["devices"]})})
        return cfg.model_copy(update={"resume": True}), run
    cfg = build_config(data, config=config, overrides=overrides, **kwargs)
    if cfg.data.path is None:
        raise ConfigError("The 'data.path' parameter is required: pass a folder of images or a CSV file.")
    cfg = check_task(cfg)
    out = cfg.out if cfg.out is not None else default_run_dir(cfg.data.path)
    run = RunFolder.create(out)
    return cfg.model_copy(update={"out": run.path}), run


def resolve_task(cfg: FitConfig) -> FitConfig:
    """``task: auto`` -> ``detect`` when the data is a detection layout (COCO, YOLO, VOC), else
    ``classify``."""
    if cfg.task != "auto":
        return cfg
    from headstart.data.detection import detect_layout

    task = "detect" if cfg.data.path is not None and detect_layout(cfg.data.path) else "classify"
    return cfg.model_copy(update={"task": task})


def check_task(cfg: FitConfig) -> FitConfig:
    """The config's task (``auto`` resolved from the data's layout) is registered, knows
    ``train.strategy`` and reports the metric that ``train.monitor`` names (``auto``: the task's
    default, filled in): checked before any image is read."""
    from headstart._validation import check_choice
    from headstart.engine.metrics import check_monitor
    from headstart.tasks import get_task

    cfg = resolve_task(cfg)
    spec = get_task(cfg.task)
    check_choice("train.strategy", cfg.train.strategy, ("auto", *spec.strategies))
    if cfg.train.monitor == "auto":
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": spec.default_monitor})})
    check_monitor(cfg.train.monitor, spec.metrics, task=spec.name)
    return cfg


def _console(verbose: bool):
    from headstart._console import make_console

    return make_console(verbose)


def fit(
    data: str | Path | None = None,
    *,
    config: str | Path | Mapping[str, Any] | FitConfig | None = None,
    overrides: Sequence[str] = (),
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    **kwargs: Any,
) -> FitResult:
    """Train and evaluate a model on ``data`` as the config says (see :func:`headstart.api.fit`)."""
    from headstart.engine import distributed

    if distributed.env_world().is_distributed:  # under torchrun: this is one of its ranks
        with distributed.session() as world:
            cfg, run = distributed.on_main(lambda: resolve_config(data, config, overrides, kwargs))
            return _run_task(_with_world(cfg, world.size), run, verbose=verbose and world.is_main,
                             callbacks=callbacks)
    cfg, run = resolve_config(data, config, overrides, kwargs)
    devices = resolve_devices(cfg)
    if devices == 1:
        return _run_task(_with_world(cfg, 1), run, verbose=verbose, callbacks=callbacks)
    if callbacks:
        raise ConfigError(f"Python callbacks cannot be sent to the {devices} worker processes of train.devices={devices}:"
                          " use devices=1, or run the script under torchrun.")
    distributed.launch(run_worker, (_with_world(cfg, devices), str(run.path), verbose), devices)
    return load(run.path)


def resolve_devices(cfg: FitConfig) -> int:
    """How many worker processes ``train.devices`` asks for (auto: one per visible GPU, 1 without),
    checked against the GPUs there are and the global batch size, before any work."""
    import torch

    from headstart.engine.distributed import per_device_batch

    gpus = torch.cuda.device_count() if cfg.train.device != "cpu" else 0
    devices = cfg.train.devices if cfg.train.devices != "auto" else max(1, gpus)
    if devices > 1 and gpus and devices > gpus:
        raise ConfigError(f"The 'train.devices' parameter is {devices} but this machine has {gpus} GPU(s). Pass"
                          f" --devices {gpus} (the global batch size and the LR keep their meaning), or use torchrun"
                          " across machines.")
    if cfg.train.batch_size is not None:
        per_device_batch(cfg.train.batch_size, devices)
    return devices


def _with_world(cfg: FitConfig, size: int) -> FitConfig:
    """config.yaml records the world size in train.devices."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"devices": size})})


def run_worker(cfg: FitConfig, run_dir: str, verbose: bool) -> None:
    """One worker process of ``train.devices`` > 1 (started by :func:`fit` through
    :func:`headstart.engine.distributed.launch`): join the process group, run the task's workflow."""
    from headstart.engine import distributed

    with distributed.session() as world:
        _run_task(cfg, RunFolder(run_dir), verbose=verbose and world.is_main, callbacks=())


def _run_task(cfg: FitConfig, run: RunFolder, *, verbose: bool, callbacks: Sequence[Any]) -> FitResult:
    module = FIT_WORKFLOWS.get(cfg.task)
    if module is None:  # a task registered in headstart.tasks whose fit workflow is not written yet
        from headstart.tasks import UnsupportedForTask, get_task

        raise UnsupportedForTask(f"`headstart fit` cannot train {get_task(cfg.task).title} yet (task {cfg.task!r}).")
    return importlib.import_module(module).run(cfg, run, console=_console(verbose), verbose=verbose,
                                               callbacks=callbacks)
