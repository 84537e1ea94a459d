"""A YOLO detector as headstart uses it: built from its model YAML (never from a pickle), weights
in safetensors, and an adapter with the interface of torchvision's detectors, so headstart's
evaluation (``tasks/detection/task.py:predict_boxes``) and ``BoxPredictor`` run it unchanged.

The adapter takes a list of float CHW images in [0, 1] whose longer side is the input size (what
headstart's box preprocessing gives), pads each to the square input size at the bottom and right
with Ultralytics' grey (114) so box coordinates need no shift, runs the model, and turns its
``(B, 4 + C, N)`` output (centre-size boxes in input pixels, per-class sigmoid scores) into
``{"boxes", "scores", "labels"}`` with torchvision's ``batched_nms``. Every (anchor, class) pair
above ``score_thresh`` is a candidate (multi-label, as for COCO scoring); labels are 0-based (no
background class), so a YOLO run records ``first_label`` 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image  # at import: not first inside an ONNX trace

__all__ = ["build_yolo_model", "YoloDetector", "load_yolo_bundle", "model_yaml_text", "backbone_layers"]

PAD_VALUE = 114 / 255


def build_yolo_model(model_yaml: str | Mapping[str, Any], num_classes: int):
    """Ultralytics' ``DetectionModel`` from a YAML name (``yolo11n.yaml``) or its parsed dict, with
    ``num_classes`` outputs, random init."""
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    cfg = dict(model_yaml) if isinstance(model_yaml, Mapping) else str(model_yaml)
    return DetectionModel(cfg, nc=num_classes, verbose=False)


def model_yaml_text(model) -> str:
    """The model's resolved YAML (family, scale, layers, nc), as text for the model bundle."""
    import yaml

    return yaml.safe_dump(dict(model.yaml), sort_keys=False)


def backbone_layers(model) -> int:
    """How many of the YAML's layers are the backbone (Ultralytics' ``freeze`` = that count)."""
    return len(model.yaml["backbone"])


class YoloDetector(nn.Module):
    """torchvision's detector interface over an Ultralytics ``DetectionModel`` (inference only)."""

    def __init__(
        self,
        model: nn.Module,
        image_size: int,
        *,
        score_thresh: float = 0.001,
        iou_thresh: float = 0.7,
        max_det: int = 100,
        pre_nms: int = 10000,
    ):
        super().__init__()
        self.model = model
        self.image_size = int(image_size)
        self.score_thresh, self.iou_thresh, self.max_det, self.pre_nms = score_thresh, iou_thresh, max_det, pre_nms

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        if self.training:
            raise RuntimeError("YoloDetector runs inference only; Ultralytics' trainer trains the model.")
        size = self.image_size
        stride = int(max(self.model.stride))
        side = -(-max(size, *(max(im.shape[-2:]) for im in images)) // stride) * stride
        batch = images[0].new_full((len(images), 3, side, side), PAD_VALUE)
        for i, im in enumerate(images):
            batch[i, :, : im.shape[-2], : im.shape[-1]] = im
        out = self.model(batch)
        preds = out[0] if isinstance(out, (tuple, list)) else out
        return [self._decode(p, im.shape[-2:]) for p, im in zip(preds.float(), images)]

    def _decode(self, pred: torch.Tensor, hw) -> dict[str, torch.Tensor]:
        boxes = clip_boxes_to_image(box_convert(pred[:4].T, "cxcywh", "xyxy"), tuple(hw))  # the image, not the padding
        scores = pred[4:].T  # (N, C)
        anchor, label = (scores > self.score_thresh).nonzero(as_tuple=True)
        score = scores[anchor, label]
        # when traced for ONNX (headstart.export.detection_onnx), the cap is in the graph whatever the
        # example's count: torchvision's own detectors' k = min(k, n) that stays dynamic in a trace
        if torch.jit.is_tracing() or score.numel() > self.pre_nms:
            from torchvision.models.detection._utils import _topk_min

            score, top = score.topk(_topk_min(score, self.pre_nms, 0))
            anchor, label = anchor[top], label[top]
        box = boxes[anchor]
        keep = batched_nms(box, score, label, self.iou_thresh)[: self.max_det]
        return {"boxes": box[keep], "scores": score[keep], "labels": label[keep]}


def load_yolo_bundle(model_dir: str | Path, meta: Mapping[str, Any]) -> YoloDetector:
    """The run's YOLO detector from ``model/model.yaml`` and ``model/model.safetensors`` (no
    pickle), in eval mode on the CPU."""
    import yaml
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    spec = meta["detector"]
    model_yaml = yaml.safe_load((model_dir / "model.yaml").read_text(encoding="utf-8"))
    model = build_yolo_model(model_yaml, int(spec["num_classes"]))
    model.load_state_dict(load_file(model_dir / "model.safetensors"))
    yolo = meta.get("yolo") or {}
    return YoloDetector(
        model.float().eval(),
        int(spec["image_size"]),
        iou_thresh=float(yolo.get("iou", 0.7)),
        max_det=int(meta.get("max_det", 100)),
    ).eval()
