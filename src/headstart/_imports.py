"""Optional dependencies, imported on use with an install hint (like Optuna's ``_imports``).

    onnxruntime = optional_import("onnxruntime", extra="export")

raises ``ImportError: headstart export needs 'onnxruntime', which is not installed. Install it with
pip install 'headstart[export]'`` only when the feature is used, never at ``import headstart``.

The base install (numpy, Pillow, pydantic, PyYAML) runs the CLI and ``import headstart``;
``headstart[predict]`` adds onnxruntime, enough to predict with an exported .onnx file. Everything
that trains (torch, timm, ...) is the ``train`` extra. A command declares the extras it cannot run
without as ``REQUIRES = ("train",)`` in its module; the CLI calls :func:`check_extras` with it before
the command runs, so a light install fails at once with the command to type, not with a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Iterable

from headstart.errors import HeadstartError

__all__ = ["optional_import", "check_extras", "missing_modules", "extra_of_module", "MissingDependencyError",
           "EXTRA_MODULES"]

# extra of pyproject.toml -> the modules (import names) a feature of that extra cannot run without.
# tests/test_packaging.py checks that each module is installed by a package listed in that extra.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "torchvision", "timm", "sklearn", "safetensors", "matplotlib", "rich", "tqdm",
              "faster_coco_eval"),
    "predict": ("onnxruntime",),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "serve": ("fastapi", "uvicorn", "python_multipart"),
    "tune": ("optuna",),
    "doctor": ("cleanlab", "imagehash"),
    "keras": ("h5py",),
    "yolo": ("ultralytics",),  # AGPL-3.0, opt-in: not part of 'all'
}


# import name -> pip package, where they differ (for messages)
_PACKAGE_OF = {"sklearn": "scikit-learn", "python_multipart": "python-multipart",
               "faster_coco_eval": "faster-coco-eval"}


class MissingDependencyError(HeadstartError, ImportError):
    """An optional dependency of a headstart feature is not installed (the CLI exits with 1)."""


def optional_import(module: str, *, extra: str, package: str | None = None, feature: str | None = None,
                    hint: str = "") -> ModuleType:
    """``import module``, or a :class:`MissingDependencyError` that says what to install.

    ``feature`` names what needs the module (default ``"headstart <extra>"``); ``hint`` is appended."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{feature or f'headstart {extra}'} needs {pkg!r}, which is not installed. "
            f"Install it with: pip install 'headstart[{extra}]' (or pip install {pkg}).{' ' + hint if hint else ''}"
        ) from exc


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that cannot be found (found without importing them: fast)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a finder that refuses the name, or a broken module in sys.modules
            found = False
        if not found:
            missing.append(name)
    return missing


def check_extras(extras: Iterable[str], feature: str) -> None:
    """Raise :class:`MissingDependencyError` naming the extras to install when a module they provide is
    missing, e.g. ``headstart fit needs the 'train' extra (not installed: torch, timm). Install it
    with: pip install 'headstart[train]'``."""
    extras = list(extras)
    unknown = [e for e in extras if e not in EXTRA_MODULES]
    if unknown:  # a programming error in a command module, not a user error
        raise KeyError(f"unknown extras {unknown}; known: {sorted(EXTRA_MODULES)}")
    missing = {extra: missing_modules(EXTRA_MODULES[extra]) for extra in extras}
    needed = [extra for extra in extras if missing[extra]]
    if not needed:
        return
    names = " and ".join(repr(e) for e in needed)
    modules = ", ".join(_PACKAGE_OF.get(m, m) for e in needed for m in missing[e])
    raise MissingDependencyError(
        f"{feature} needs the {names} extra{'s' if len(needed) > 1 else ''} (not installed: {modules})."
        f" Install it with: pip install 'headstart[{','.join(needed)}]'."
    )


def extra_of_module(name: str | None) -> str | None:
    """The extra that installs the top-level module of ``name`` (``'torch.nn'`` -> ``'train'``), or None."""
    top = (name or "").split(".")[0]
    for extra, modules in EXTRA_MODULES.items():
        if top in modules:
            return extra
    return None
