"""A detection run's model from its folder (safetensors + JSON; no pickle runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_run_model"]


def load_run_model(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained detector of a run folder (eval mode, CPU) and its record: ``classes``,
    ``preprocessing``, ``detector`` (the DetectorSpec), ``conf`` and ``max_det``."""
    from safetensors.torch import load_file

    from headstart.data.transforms import Preprocessing
    from headstart.run_folder import RunFolder
    from headstart.tasks.detection.models import DetectorSpec, create_detector
    from headstart.tasks.detection.yolo import is_yolo

    run = RunFolder.open(run_dir)
    meta = run.read_json("model/model.json")
    spec = DetectorSpec.from_dict(meta["detector"])
    if is_yolo(spec.detector):  # Ultralytics' model from model.yaml + safetensors, behind torchvision's interface
        from headstart.tasks.detection.yolo.model import load_yolo_bundle

        model = load_yolo_bundle(run.model_dir, meta)
    else:
        model = create_detector(spec)
        model.load_state_dict(load_file(run.model_dir / "model.safetensors"))
    record = {
        "classes": list(run.read_json("model/labels.json")["classes"]),
        "preprocessing": Preprocessing.from_dict(run.read_json("model/preprocessing.json")),
        "detector": spec, "conf": meta.get("conf"), "max_det": meta.get("max_det", 100),
    }
    return model.eval(), record
