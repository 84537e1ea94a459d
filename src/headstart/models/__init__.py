"""Model choice, pretrained weights (offline store, resolution, import, fetch) and model building.

Names are imported lazily so that ``import headstart.models`` does not import torch or timm.
"""

from __future__ import annotations

from headstart._lazy import attach

_LAZY = {
    # zoo
    "Candidate": "headstart.models.zoo",
    "CPU_CANDIDATES": "headstart.models.zoo",
    "GPU_CANDIDATES": "headstart.models.zoo",
    "candidates": "headstart.models.zoo",
    "check_model_name": "headstart.models.zoo",
    # the model: auto rule
    "AutoChoice": "headstart.models.choice",
    "choose_model": "headstart.models.choice",
    "auto_model": "headstart.models.choice",
    # store
    "weights_dir": "headstart.models.store",
    "load_state_dict_file": "headstart.models.store",
    "list_weights": "headstart.models.store",
    "format_weights_table": "headstart.models.store",
    # known sources
    "KNOWN_SOURCES": "headstart.models.sources",
    "KnownSource": "headstart.models.sources",
    # resolution
    "ResolvedWeights": "headstart.models.resolve",
    "resolve_weights": "headstart.models.resolve",
    "has_offline_weights": "headstart.models.resolve",
    # import / fetch
    "WeightsRecord": "headstart.models.importer",
    "import_weights": "headstart.models.importer",
    "fetch_weights": "headstart.models.importer",
    "check_on_cat": "headstart.models.importer",
    # building
    "create_model": "headstart.models.build",
    "feature_dim": "headstart.models.build",
    "head_parameters": "headstart.models.build",
    "backbone_parameters": "headstart.models.build",
    "set_trainable": "headstart.models.build",
    "freeze_batchnorm": "headstart.models.build",
    "unfreeze_batchnorm": "headstart.models.build",
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
