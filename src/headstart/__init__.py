"""headstart: transfer learning on images that works the first time.

The public API is imported lazily so that ``import headstart`` stays fast (no torch at import time).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it. The subpackages have other names (diagnose, reporting,
# tuning) than the functions they provide, so importing a subpackage never shadows a function.
_LAZY = {
    "fit": "headstart.api",
    "load": "headstart.api",
    "FitResult": "headstart.api",
    "build_config": "headstart.config",
    "FitConfig": "headstart.config",
    "rank": "headstart.select.rank",
    "RankTable": "headstart.select.rank",
    "doctor": "headstart.diagnose",
    "report": "headstart.reporting",
    "tune": "headstart.tuning",
    "TuneResult": "headstart.tuning",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headstart' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
