"""Model choice, pretrained weights (offline store, resolution, import, fetch) and model building.

Names are imported lazily so that ``import headstart.models`` does not import torch or timm.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # zoo
    "Candidate": "zoo",
    "CPU_CANDIDATES": "zoo",
    "GPU_CANDIDATES": "zoo",
    "candidates": "zoo",
    "check_model_name": "zoo",
    "AutoChoice": "zoo",
    "choose_model": "zoo",
    "auto_model": "zoo",
    # store
    "weights_dir": "store",
    "load_state_dict_file": "store",
    "list_weights": "store",
    "format_weights_table": "store",
    # known sources
    "KNOWN_SOURCES": "sources",
    "KnownSource": "sources",
    # resolution
    "ResolvedWeights": "resolve",
    "resolve_weights": "resolve",
    "has_offline_weights": "resolve",
    # import / fetch
    "WeightsRecord": "importer",
    "import_weights": "importer",
    "fetch_weights": "importer",
    "check_on_cat": "importer",
    # building
    "create_model": "build",
    "feature_dim": "build",
    "head_parameters": "build",
    "backbone_parameters": "build",
    "set_trainable": "build",
    "freeze_batchnorm": "build",
    "unfreeze_batchnorm": "build",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headstart.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"headstart.models.{module}"), name)


def __dir__() -> list[str]:
    return __all__
