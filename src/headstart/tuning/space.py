"""The search space of ``headstart tune``: what is searched, over which values, and how a sampled
point becomes a :class:`~headstart.config.FitConfig`.

A space is a mapping of parameter name -> range, written in YAML like this::

    lr: {low: 1.0e-5, high: 1.0e-3, log: true}    # float range (log scale)
    epochs: {low: 2, high: 10}                     # int range (ints give an int range)
    batch_size: [16, 32, 64]                       # a list is a categorical choice
    strategy: {choices: [linear-probe, lp-ft]}     # the same, spelled out
    label_smoothing: 0.1                           # a scalar fixes the value (not searched)
    train.momentum: {low: 0.8, high: 0.99}         # any dotted config key works too

Names are the flat keys of ``headstart fit`` plus ``augment_strength`` (a multiplier of every
augmentation knob of the preset, 1 = the preset as it is). Without a YAML file,
:func:`default_space` chooses the ranges from the dataset size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from headstart._validation import did_you_mean
from headstart.errors import ConfigError

__all__ = ["Param", "SearchSpace", "default_space", "load_space", "PARAM_KEYS", "apply_params"]

# searchable name -> dotted config path ('' = handled by apply_params)
PARAM_KEYS: dict[str, str] = {
    "lr": "train.lr",
    "probe_lr": "train.probe_lr",
    "batch_size": "train.batch_size",
    "weight_decay": "train.weight_decay",
    "epochs": "train.epochs",
    "probe_epochs": "train.probe_epochs",
    "strategy": "train.strategy",
    "layer_decay": "train.layer_decay",
    "label_smoothing": "train.label_smoothing",
    "optimizer": "train.optimizer",
    "augment": "augment.preset",
    "augment_strength": "",
    "image_size": "model.image_size",
    "model": "model.name",
    "drop_rate": "model.drop_rate",
}
_SPEC_KEYS = ("low", "high", "log", "step", "choices")

# augmentation knob -> (value of the default AugmentConfig, upper bound the config accepts)
_AUG_KNOBS: dict[str, tuple[float, float]] = {
    "rotation": (15.0, 180.0), "shear": (10.0, 89.0), "zoom": (0.1, 0.9), "shift": (0.1, 0.9),
    "brightness": (0.2, 0.9), "erasing": (0.25, 1.0), "mixup": (0.2, 4.0), "cutmix": (1.0, 4.0),
}


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


def _config_path(name: str) -> str:
    if name in PARAM_KEYS:
        return PARAM_KEYS[name]
    if "." in name:
        return name
    hint = did_you_mean(name, list(PARAM_KEYS))
    raise ConfigError(
        f"Unknown search-space parameter {name!r}.{hint} Valid names: {', '.join(PARAM_KEYS)}, "
        "or any dotted config key such as 'train.momentum'."
    )


def _check_value(name: str, value: Any) -> None:
    """Check a value against the config's own validation, so a range that the config rejects
    fails here with the config's message instead of in the middle of the study."""
    from headstart.config import build_config
    from headstart.workflows.fit import check_task

    tree: dict[str, Any] = {}
    apply_params(tree, {name: value})
    check_task(build_config(config=tree))  # the task's own names (strategy, monitor) too


def _parse_param(name: str, spec: Any) -> Param | None:
    _config_path(name)
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
            _check_value(name, value)
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
    if name in ("epochs", "probe_epochs", "batch_size", "image_size") and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"The search space of {name!r} needs integer bounds. Got low={low!r}, high={high!r}.")
    if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)) and not _is_float_param(name):
        low_, high_ = int(low), int(high)
    else:
        low_, high_ = float(low), float(high)
    _check_value(name, low_)
    _check_value(name, high_)
    return Param(name, low=low_, high=high_, log=log, step=step)


def _is_float_param(name: str) -> bool:
    """Parameters that are floats in the config even when a YAML file writes ``low: 0``."""
    path = PARAM_KEYS.get(name, name)
    return path in ("train.lr", "train.probe_lr", "train.weight_decay", "train.layer_decay", "train.label_smoothing",
                    "model.drop_rate", "") or name == "augment_strength"


def parse_space(spec: Mapping[str, Any], source: str = "the search space") -> SearchSpace:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source} must be a mapping of parameter -> range. Got a {type(spec).__name__}.")
    params: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    for name, value in spec.items():
        name = str(name)
        param = _parse_param(name, value)
        if param is None:
            _check_value(name, value)
            fixed[name] = value
        else:
            params[name] = param
    if not params:
        raise ConfigError(f"{source} searches nothing: give at least one range or choices list.")
    return SearchSpace(params, fixed)


def load_space(path: str | Path) -> SearchSpace:
    from headstart.config import load_yaml

    return parse_space(load_yaml(path), source=f"The search space file {str(path)!r}")


def default_space(n_train: int, *, base_epochs: int = 10) -> SearchSpace:
    """Ranges that are worth searching for a dataset of ``n_train`` training images.

    Small datasets (< 200 images) search the probe and lp-ft (full fine-tuning mostly overfits
    there) with small batches; medium ones add full fine-tuning; large ones drop the probe."""
    if n_train < 200:
        strategies, batches, augments = ["linear-probe", "lp-ft"], [8, 16, 32], ["none", "light", "medium"]
    elif n_train <= 20_000:
        strategies, batches, augments = ["linear-probe", "lp-ft", "full"], [16, 32, 64], ["light", "medium", "strong"]
    else:
        strategies, batches, augments = ["lp-ft", "full"], [32, 64, 128], ["light", "medium", "strong"]
    spec: dict[str, Any] = {
        "strategy": {"choices": strategies},
        "lr": {"low": 1e-5, "high": 1e-3, "log": True},
        "probe_lr": {"low": 1e-4, "high": 3e-2, "log": True},
        "batch_size": {"choices": batches},
        "weight_decay": {"low": 1e-4, "high": 0.3, "log": True},
        "epochs": {"low": max(1, base_epochs // 3), "high": max(1, base_epochs)},
        "layer_decay": {"low": 0.6, "high": 1.0},
        "augment": {"choices": augments},
        "augment_strength": {"low": 0.25, "high": 2.0},
        "label_smoothing": {"low": 0.0, "high": 0.2},
    }
    return parse_space(spec)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def apply_params(tree: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Write sampled ``params`` into a config ``tree`` (a FitConfig dict), in place."""
    for name, value in params.items():
        if name == "augment_strength":
            s = float(value)
            if not s >= 0:
                raise ConfigError(f"The 'augment_strength' parameter must be a float >= 0. Got {value!r}.")
            for knob, (default, cap) in _AUG_KNOBS.items():
                _set(tree, f"augment.{knob}", min(default * s, cap))
            _set(tree, "augment.scale_min", max(0.05, min(1.0, 1 - (1 - 0.35) * s)))
            _set(tree, "augment.magnitude", int(min(30, round(9 * s))))
        elif name == "layer_decay":
            # 1.0 is the same as no layer decay; null keeps config.yaml saying so
            _set(tree, "train.layer_decay", None if float(value) >= 1.0 else float(value))
        else:
            _set(tree, _config_path(name), value)
    return tree
