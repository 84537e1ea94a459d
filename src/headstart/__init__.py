"""headstart: transfer learning on images that works the first time.

The public API is imported lazily so that ``import headstart`` stays fast (no torch at import time).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fit": "headstart.api",
    "load": "headstart.api",
    "FitResult": "headstart.api",
    "build_config": "headstart.config",
    "FitConfig": "headstart.config",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headstart' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
