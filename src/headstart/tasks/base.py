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

__all__ = ["TaskSpec", "UnsupportedForTask"]


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
