"""Optional dependencies, imported on use with an install hint (like Optuna's ``_imports``).

    onnxruntime = optional_import("onnxruntime", extra="export")

raises ``ImportError: headstart export needs 'onnxruntime', which is not installed. Install it with
pip install 'headstart[export]'`` only when the feature is used, never at ``import headstart``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import", "MissingDependencyError"]


class MissingDependencyError(ImportError):
    """An optional dependency of a headstart feature is not installed."""


def optional_import(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(
            f"headstart {extra} needs {pkg!r}, which is not installed. "
            f"Install it with: pip install 'headstart[{extra}]' (or pip install {pkg})."
        ) from exc
