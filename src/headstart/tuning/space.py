"""The search space of ``headstart tune``: what is searched, over which values, and how a sampled
point becomes a :class:`~headstart.config.FitConfig`.

A space is a mapping of parameter name -> range, written in YAML like this::

    lr: {low: 1.0e-5, high: 1.0e-3, log: true}    # float range (log scale)
    epochs: {low: 2, high: 10}                     # int range (ints give an int range)
    batch_size: [16, 32, 64]                       # a list is a categorical choice
    strategy: {choices: [linear-probe, lp-ft]}     # the same, spelled out
    label_smoothing: 0.1                           # a scalar fixes the value (not searched)
    train.momentum: {low: 0.8, high: 0.99}         # any dotted config key works too

The names are the task's (:class:`~headstart.tasks.base.TaskSearchSpace`, from the task's
``TaskSpec.search_space``): for classification the flat keys of ``headstart fit`` plus
``augment_strength`` (a multiplier of every augmentation knob of the preset, 1 = the preset as it
is); for detection also ``detector``, ``backbone_lr_ratio``, ``head_epochs``, ``fpn_channels`` and
``anchors``. Without a YAML file the task's ``default_spec`` chooses the ranges from the dataset.
This module parses and validates a space for any task and turns a sampled point into a config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from headstart._validation import did_you_mean
from headstart.errors import ConfigError
from headstart.tasks.base import TaskSearchSpace, set_dotted
from headstart.tasks.classification.space import PARAM_KEYS as CLASSIFICATION_KEYS

__all__ = ["Param", "SearchSpace", "default_space", "load_space", "parse_space", "PARAM_KEYS", "apply_params",
           "task_space", "saved_space"]

# the classification names, kept here for callers of headstart.tuning.space
PARAM_KEYS: dict[str, str] = dict(CLASSIFICATION_KEYS)
_SPEC_KEYS = ("low", "high", "log", "step", "choices")


def task_space(task: str = "classify") -> TaskSearchSpace:
    """The task's half of the search space (its names, defaults and default ranges)."""
    from headstart.tasks import get_task

    return get_task(task).space()


@dataclass(frozen=True)
class Param:
    """One searched parameter: a numeric range (``low``..``high``, optionally log or stepped) or a
    categorical ``choices`` list."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "categorical"
        return "int" if isinstance(self.low, int) and isinstance(self.high, int) else "float"

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log, step=self.step)

    def grid_values(self, points: int = 3) -> list[Any]:
        """The values the grid sampler tries: the choices, every step, or ``points`` values spread
        over the range (log-spaced for log ranges)."""
        if self.choices is not None:
            return list(self.choices)
        low, high = float(self.low), float(self.high)
        if self.step is not None:
            n = int(math.floor((high - low) / self.step + 1e-9)) + 1
            values = [low + i * self.step for i in range(n)]
        elif self.log:
            values = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (points - 1)) for i in range(points)]
        else:
            values = [low + i * (high - low) / (points - 1) for i in range(points)]
        if self.kind == "int":
            values = [int(round(v)) for v in values]
        else:
            values = [float(f"{v:.4g}") for v in values]
        return list(dict.fromkeys(values))

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def to_dict(self) -> Any:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class SearchSpace:
    params: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)
    """Values set by the space file without being searched (scalars in the YAML)."""

    def suggest(self, trial) -> dict[str, Any]:
        return {name: p.suggest(trial) for name, p in self.params.items()}

    def numeric(self) -> list[str]:
        return [n for n, p in self.params.items() if p.choices is None]

    def to_dict(self) -> dict[str, Any]:
        return {**{n: p.to_dict() for n, p in self.params.items()}, **self.fixed}

    def default_point(self, defaults: Mapping[str, Any], *, complete_grid: int | None = None) -> dict[str, Any]:
        """The subset of ``defaults`` (headstart's own choices) that lies in the space: the params
        of the first, enqueued trial. Values outside the space are left to the sampler, except
        for the grid sampler (``complete_grid`` points), which needs every value: the middle one
        of the grid then."""
        point = {n: defaults[n] for n, p in self.params.items() if n in defaults and p.contains(defaults[n])}
        if complete_grid:
            for n, p in self.params.items():
                if n not in point:
                    values = p.grid_values(complete_grid)
                    point[n] = values[len(values) // 2]
        return point


def _config_path(name: str, task: str = "classify") -> str:
    keys = task_space(task).keys
    if name in keys:
        return keys[name]
    if "." in name:
        return name
    hint = did_you_mean(name, list(keys))
    for_task = "" if task == "classify" else f" for task {task!r}"
    raise ConfigError(
        f"Unknown search-space parameter {name!r}{for_task}.{hint} Valid names: {', '.join(keys)}, "
        "or any dotted config key such as 'train.momentum'."
    )


def _check_value(name: str, value: Any, task: str = "classify") -> None:
    """Check a value against the config's own validation, so a range that the config rejects
    fails here with the config's message instead of in the middle of the study."""
    from headstart.config import build_config
    from headstart.workflows.fit import check_task

    task_space(task).check(name, value)
    tree: dict[str, Any] = {"task": task}
    apply_params(tree, {name: value}, task=task)
    check_task(build_config(config=tree))  # the task's own names (strategy, monitor) too


def _parse_param(name: str, spec: Any, task: str = "classify") -> Param | None:
    _config_path(name, task)
    if isinstance(spec, (list, tuple)):
        spec = {"choices": list(spec)}
    if not isinstance(spec, Mapping):
        return None  # a scalar: fixed value
    for key in spec:
        if key not in _SPEC_KEYS:
            hint = did_you_mean(str(key), _SPEC_KEYS)
            raise ConfigError(
                f"Unknown key {key!r} in the search space of {name!r}.{hint} "
                f"A range takes low, high, log, step; a categorical takes choices."
            )
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, (list, tuple)) or len(choices) == 0:
            raise ConfigError(
                f"The search space of {name!r} has an empty 'choices' list. Give at least one value, "
                f"e.g. {name}: {{choices: [a, b]}}."
            )
        if set(spec) - {"choices"}:
            raise ConfigError(f"The search space of {name!r} mixes 'choices' with {sorted(set(spec) - {'choices'})}. Use one or the other.")
        for value in choices:
            _check_value(name, value, task)
        return Param(name, choices=tuple(choices))
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise ConfigError(
            f"The search space of {name!r} needs 'low' and 'high' (missing {', '.join(missing)}), "
            f"or a 'choices' list. Got {dict(spec)!r}."
        )
    low, high = spec["low"], spec["high"]
    for key, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"The '{name}.{key}' bound of the search space must be a number. Got {v!r}.")
    if low > high:
        raise ConfigError(f"The search space of {name!r} has low > high ({low!r} > {high!r}). Swap them.")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"The search space of {name!r} is log-scaled, so 'low' must be > 0. Got {low!r}.")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise ConfigError(f"The '{name}.step' of the search space must be a number > 0. Got {step!r}.")
    if log and step is not None:
        raise ConfigError(f"The search space of {name!r} cannot have both 'log' and 'step'. Drop one.")
    if name in task_space(task).int_names and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"The search space of {name!r} needs integer bounds. Got low={low!r}, high={high!r}.")
    if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)) and not _is_float_param(name, task):
        low_, high_ = int(low), int(high)
    else:
        low_, high_ = float(low), float(high)
    _check_value(name, low_, task)
    _check_value(name, high_, task)
    return Param(name, low=low_, high=high_, log=log, step=step)


def _is_float_param(name: str, task: str = "classify") -> bool:
    """Parameters that are floats in the config even when a YAML file writes ``low: 0``."""
    space = task_space(task)
    return space.keys.get(name, name) in space.float_paths or name in space.float_paths


def parse_space(spec: Mapping[str, Any], source: str = "the search space", *, task: str = "classify") -> SearchSpace:
    """A :class:`SearchSpace` from a mapping (a YAML file's content), checked against ``task``'s
    names and the config's validation."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source} must be a mapping of parameter -> range. Got a {type(spec).__name__}.")
    params: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    for name, value in spec.items():
        name = str(name)
        param = _parse_param(name, value, task)
        if param is None:
            _check_value(name, value, task)
            fixed[name] = value
        else:
            params[name] = param
    if not params:
        raise ConfigError(f"{source} searches nothing: give at least one range or choices list.")
    return SearchSpace(params, fixed)


def saved_space(settings: Mapping[str, Any]) -> SearchSpace:
    """The search space of a study's ``tune.json`` (studies from before detection: classification)."""
    return parse_space(settings["space"], task=settings.get("task", "classify"))


def load_space(path: str | Path, *, task: str = "classify") -> SearchSpace:
    from headstart.config import load_yaml

    return parse_space(load_yaml(path), source=f"The search space file {str(path)!r}", task=task)


def default_space(n_train: int, *, base_epochs: int = 10) -> SearchSpace:
    """Classification ranges that are worth searching for a dataset of ``n_train`` training images
    (:func:`headstart.tasks.classification.space.default_spec`)."""
    from headstart.tasks.classification.space import default_spec

    return parse_space(default_spec(n_train, base_epochs=base_epochs))


def apply_params(tree: dict[str, Any], params: Mapping[str, Any], *, task: str = "classify") -> dict[str, Any]:
    """Write sampled ``params`` into a config ``tree`` (a FitConfig dict), in place."""
    space = task_space(task)
    for name, value in params.items():
        if not space.apply(tree, name, value):
            set_dotted(tree, _config_path(name, task), value)
    return tree
