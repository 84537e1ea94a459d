"""headstart: transfer learning on images that works the first time.

The public API is imported lazily so that ``import headstart`` stays fast (no torch at import time).
"""

from __future__ import annotations

from headstart._lazy import attach
from headstart._version import __version__ as __version__

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

__getattr__, __dir__, __all__ = attach(__name__, _LAZY, extra=("__version__",))
