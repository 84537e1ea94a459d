"""Lazy public names for a package (the idea of SPEC 1 / ``lazy_loader.attach``, kept to the few
lines headstart needs): the package's ``__init__`` maps each public name to the module that defines
it, and the module is imported on first access, so importing a package never loads torch."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["attach"]


def attach(package: str, names: Mapping[str, str], extra: tuple[str, ...] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__, __dir__, __all__ = attach(__name__, {"fit": "headstart.api", ...})``."""
    public = sorted(names) + list(extra)

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return public

    return __getattr__, __dir__, public
