"""A detection run's model from its folder (safetensors + JSON; no pickle runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_run_model", "DetectorGraph", "detector_limits"]


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


class DetectorGraph(torch.nn.Module):
    """The detector as an exportable graph: one uint8 RGB image ``(1, 3, H, W)`` in (the longer side
    already resized to the input size, as the image cache stores it), ``(boxes xyxy in those pixels,
    scores, labels)`` out, sorted by score. Scaling to [0, 1] is here; normalisation, the padding to
    the stride, the heads, box decoding, the detector's score floor, NMS and its cap on detections
    are torchvision's own code inside the model, traced with it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        # eval as a whole: the exporter restores the mode it found, and a wrapper left in training
        # mode would put the detector back into training (where it asks for targets)
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model([image[0].float() / 255.0])[0]
        return out["boxes"], out["scores"], out["labels"]


def detector_limits(model: torch.nn.Module) -> tuple[float, int]:
    """(the score below which the detector drops candidates, its most detections per image)."""
    if hasattr(model, "max_det"):  # a YOLO detector (tasks/detection/yolo/model.py): its own names
        return float(model.score_thresh), int(model.max_det)
    heads = getattr(model, "roi_heads", model)  # Faster R-CNN keeps them in its RoI heads
    return float(heads.score_thresh), int(heads.detections_per_img)
