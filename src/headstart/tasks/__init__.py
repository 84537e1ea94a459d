"""Task plug-ins of the engine: classification today, detection next.

``get_task(name)`` returns a task's :class:`~headstart.tasks.base.TaskSpec`; ``task_of_run(path)``
reads which task a run folder holds (``model/model.json``'s ``task``; runs written before tasks
existed are classification). ``predict``, ``export``, ``serve``, ``report`` and ``doctor`` dispatch
on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from headstart._validation import did_you_mean
from headstart.errors import ConfigError, RunFolderError
from headstart.tasks.base import TaskSpec, UnsupportedForTask
from headstart.tasks.classification.spec import SPEC as CLASSIFICATION
from headstart.tasks.detection.spec import SPEC as DETECTION

__all__ = ["TASKS", "TaskSpec", "UnsupportedForTask", "get_task", "task_of_run", "metric_directions",
           "require_classification_data"]

TASKS: dict[str, TaskSpec] = {CLASSIFICATION.name: CLASSIFICATION, DETECTION.name: DETECTION}


def get_task(name: str) -> TaskSpec:
    spec = TASKS.get(name)
    if spec is None:
        options = sorted(TASKS)
        raise ConfigError(
            f"The 'task' parameter must be one of {{{', '.join(repr(o) for o in options)}}}. Got {name!r}."
            f"{did_you_mean(str(name), options)}"
        )
    return spec


def task_of_run(run_dir: str | Path) -> TaskSpec:
    """The task of a run folder, from ``model/model.json`` (or ``config.yaml`` before the model is
    saved); a run folder from before tasks existed is a classification run."""
    run_dir = Path(run_dir)
    meta, config = run_dir / "model" / "model.json", run_dir / "config.yaml"
    name = CLASSIFICATION.name
    try:
        if meta.is_file():
            name = json.loads(meta.read_text(encoding="utf-8")).get("task", name)
        elif config.is_file():
            import yaml

            name = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("task", name)
    except Exception as exc:  # unreadable or malformed JSON / YAML (json, yaml and OS errors alike)
        raise RunFolderError(f"Cannot read the task of the run folder {str(run_dir)!r}: {exc}.") from None
    return get_task(name)


def metric_directions(task: str = CLASSIFICATION.name) -> dict[str, str]:
    return dict(get_task(task).metrics)


def require_classification_data(path, command: str) -> None:
    """A clear error when ``command`` (classification only so far) is given a detection dataset."""
    from headstart.data.detection import detect_layout

    layout = detect_layout(path) if path is not None and Path(path).exists() else None
    if layout is not None:
        raise UnsupportedForTask(
            f"{command} works on classification datasets in this version; {str(path)!r} is a {layout} detection"
            f" dataset. Train a detector with `headstart fit {path}` (the task is detected from the layout)."
        )
