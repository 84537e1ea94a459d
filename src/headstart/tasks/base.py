"""What a task plug-in declares: its name, its validation metrics and where its parts live.

A :class:`TaskSpec` is plain data (no torch), so the CLI, ``predict`` on a light install and the
run-folder readers can look a task up cheaply; the parts are named by import path and loaded only
when used. The engine's side of a task is :class:`headstart.engine.protocol.TrainableTask`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from headstart.errors import HeadstartError

__all__ = ["TaskSpec", "UnsupportedForTask", "TaskSearchSpace", "set_dotted"]


class UnsupportedForTask(HeadstartError, ValueError):
    """A command that this task does not provide (yet)."""


@dataclass(frozen=True)
class TaskSpec:
    """``name``: what config.yaml and model/model.json call it (``classify``); ``metrics``: the
    validation metrics with the direction in which each is better; ``default_monitor``: the metric
    that early stopping and the best checkpoint follow unless told otherwise; ``parts``: command ->
    ``"module:attribute"`` of the function that does it for this task (``fit``, ``load_model``,
    ``export_wrapper``, ...)."""

    name: str
    title: str
    metrics: Mapping[str, str]
    default_monitor: str
    objective: str  # what tune maximises or minimises by default
    strategies: tuple[str, ...] = ()  # train.strategy values besides 'auto'
    parts: Mapping[str, str] = field(default_factory=dict)
    search_space: str | None = None  # "module:attribute" of the task's TaskSearchSpace (tune), loaded on use

    def part(self, name: str, command: str | None = None) -> Any:
        """The object behind ``parts[name]``, imported now; a clear error when the task has none."""
        target = self.parts.get(name)
        if target is None:
            what = command or name
            raise UnsupportedForTask(
                f"{what} is not available for {self.title} runs (task {self.name!r}) in this version of headstart."
            )
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def direction(self, metric: str) -> str:
        return self.metrics[metric]

    @property
    def test_metric(self) -> str:
        """The key of metrics.json that matches the tune objective (``val_map`` -> ``map``)."""
        return self.objective.removeprefix("val_")

    def space(self) -> "TaskSearchSpace":
        """The task's half of ``headstart tune``'s search space, imported now."""
        if self.search_space is None:
            raise UnsupportedForTask(
                f"`headstart tune` is not available for {self.title} runs (task {self.name!r}) in this version of headstart."
            )
        module, _, attr = self.search_space.partition(":")
        return getattr(importlib.import_module(module), attr)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """``tree['a']['b'] = value`` for ``dotted='a.b'``, creating the sections on the way."""
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class TaskSearchSpace:
    """What ``headstart tune`` searches for one task: the task's half of the search space. The
    tuning layer (:mod:`headstart.tuning.space`) parses, validates and samples ranges; a task
    says which names it knows, how a name is written into a config, what its defaults are and
    which ranges are worth searching for a dataset.

    ``keys``: searchable name -> dotted config path (``''``: :meth:`apply` writes it);
    ``int_names``: names whose ranges need integer bounds; ``float_paths``: config paths (or
    names) that are floats even when a YAML file writes ``low: 0``; ``choose_model_once``: with
    ``model: auto`` the study chooses the model once (by rank) instead of every trial.
    """

    task: str = ""
    keys: Mapping[str, str] = {}
    int_names: frozenset[str] = frozenset()
    float_paths: frozenset[str] = frozenset()
    choose_model_once: bool = False

    def apply(self, tree: dict[str, Any], name: str, value: Any) -> bool:
        """Write a name that is not a plain config path (``keys[name] == ''``); False when not one."""
        return False

    def check(self, name: str, value: Any) -> None:
        """Checks of a searched value beyond the config's own validation (none by default)."""

    def load(self, cfg) -> tuple[Any, int]:
        """The dataset index of ``cfg`` and its number of training samples."""
        raise NotImplementedError

    def resolve(self, cfg, index, n_train: int, device_type: str):
        """``cfg`` with every ``auto`` resolved as the task's fit resolves it."""
        raise NotImplementedError

    def default_point(self, resolved) -> dict[str, Any]:
        """headstart's own value of every searchable name, from a resolved config."""
        raise NotImplementedError

    def default_spec(self, cfg, resolved, n_train: int) -> dict[str, Any]:
        """The ranges worth searching for this dataset (a space mapping, as in a YAML file)."""
        raise NotImplementedError
