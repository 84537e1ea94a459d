"""provenance.json: what produced a run's model (versions, data fingerprint, weights, seed)."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import Any

from headstart.config import FitConfig

__all__ = ["provenance"]


def provenance(version: str, cfg: FitConfig, index, weights) -> dict[str, Any]:
    import timm
    import torch
    import torchvision

    return {
        "headstart_version": version,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "timm_version": timm.__version__,
        "python_version": platform.python_version(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.train.seed,
        "dataset": {"root": str(index.root), "layout": index.layout, "fingerprint": index.fingerprint(),
                    "sizes": {k: len(v) for k, v in index.splits.items()}},
        "weights": None if weights is None else {
            "source": weights.source, "path": str(weights.path) if weights.path else None, "sha256": weights.sha256,
        },
    }
