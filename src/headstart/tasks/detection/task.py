"""The detection task as the engine sees it (:class:`headstart.engine.protocol.TrainableTask`).

A training step is torchvision's: the detector takes images and targets in train mode and returns
its dict of losses, which the engine sums (and logs part by part). Validation runs the detector in
eval mode over the val split and scores its boxes with COCO's metrics. The ``head`` stage trains the
feature pyramid and the heads on a frozen backbone; later stages train everything, the backbone at
``backbone_lr_ratio`` of the LR (timm's schedulers honour a group's ``lr_scale``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from headstart.engine.device import DeviceSettings
from headstart.engine.protocol import StepOutput
from headstart.engine.stages import Stage
from headstart.tasks.detection.models import backbone_parameters, early_backbone_parameters
from headstart.tasks.detection.spec import METRIC_DIRECTIONS, PROGRESS_COLUMNS

__all__ = ["DetectionTask", "predict_boxes", "ground_truth", "check_box_regression"]

# FCOS's GIoU loss is exactly 1 when every foreground box has zero size (its ReLU outputs all 0): no
# gradient can leave that state. An epoch of at least this many steps, all within this of 1, stops
# training (issue 12); healthy runs are at 0.6-0.7 by the end of their first epoch.
COLLAPSE_MIN_STEPS = 20
COLLAPSE_TOLERANCE = 1e-3


def check_box_regression(losses: Sequence[float], epoch_label: str) -> None:
    """Raise TrainingDiverged when the box-regression losses of one epoch say the head collapsed."""
    from headstart.engine.trainer import TrainingDiverged

    if len(losses) < COLLAPSE_MIN_STEPS or min(losses) < 1.0 - COLLAPSE_TOLERANCE:
        return
    raise TrainingDiverged(
        f"The box-regression (GIoU) loss stayed at {min(losses):.4f}-{max(losses):.4f} for all {len(losses)} steps"
        f" of {epoch_label}: every predicted box has zero size and the regression head gets no gradient"
        " (its side distances sit at the ReLU's 0). Train again with a lower learning rate (train.lr), another detector"
        " (--detector fasterrcnn or retinanet) or a larger --image-size."
    )


def _groups(params: Sequence[torch.nn.Parameter], weight_decay: float, lr_scale: float) -> list[dict[str, Any]]:
    """Weight decay on weights only (not on biases and norms), as timm's param_groups_weight_decay."""
    decay = [p for p in params if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay, "lr_scale": lr_scale},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": lr_scale}]
    return [g for g in groups if g["params"]]


class DetectionTask:
    name = "detect"
    metric_directions = METRIC_DIRECTIONS
    progress_columns = PROGRESS_COLUMNS

    def __init__(self, model: torch.nn.Module, *, make_loader: Callable, dev: DeviceSettings, classes: Sequence[str],
                 val_samples: Sequence, weight_decay: float, backbone_lr_ratio: float, first_label: int = 1,
                 frozen_stride: int = 0):
        self.model = model
        self.make_loader = make_loader
        self.dev = dev
        self.classes = list(classes)
        self.val_samples = list(val_samples)
        self.weight_decay = weight_decay
        self.backbone_lr_ratio = backbone_lr_ratio
        # the stem and stages up to this output stride stay frozen in every stage (detect.frozen_stride)
        self._early = {id(p) for p in early_backbone_parameters(model, frozen_stride)}
        self.first_label = first_label  # the model's label of class 0 (see DetectorSpec.first_label)
        self._box_losses: list[torch.Tensor] = []  # this epoch's FCOS regression losses (check_box_regression)

    def setup_stage(self, stage: Stage, done: Sequence[Stage]) -> list[dict[str, Any]]:
        body, rest = backbone_parameters(self.model)
        frozen = stage.name == "head"
        for p in body:
            p.requires_grad_(not frozen and id(p) not in self._early)
        for p in rest:
            p.requires_grad_(True)
        groups = _groups(rest, self.weight_decay, 1.0)
        if not frozen:
            groups += _groups(body, self.weight_decay, self.backbone_lr_ratio)
        return groups

    def steps_per_epoch(self, stage: Stage) -> int:
        return len(self.make_loader("train", seed=0))

    def train_batches(self, stage: Stage, seed: int):
        self.model.train()  # the backbone's BatchNorm is frozen (FrozenBatchNorm2d) whatever the mode
        return self.make_loader("train", seed=seed)

    def training_step(self, stage: Stage, batch) -> StepOutput:
        images, targets = batch
        images = [self.dev.to_device(im) for im in images]
        targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor).to(self.dev.device),
                    "labels": (t["labels"] - 1 + self.first_label).to(self.dev.device)} for t in targets]
        losses = self.model(images, targets)
        if "bbox_ctrness" in losses:  # FCOS: kept on the device, read once per epoch
            self._box_losses.append(losses["bbox_regression"].detach())
        return StepOutput(losses, len(images))

    def validate(self, stage: Stage) -> dict[str, float]:
        from headstart.tasks.detection.metrics import coco_metrics

        box_losses, self._box_losses = self._box_losses, []
        if box_losses:
            check_box_regression(torch.stack(box_losses).float().cpu().tolist(), f"an epoch of stage {stage.name!r}")
        detections = predict_boxes(self.model, self.make_loader("val", seed=0), self.dev, self.first_label)
        m = coco_metrics(ground_truth(self.val_samples), detections, self.classes)
        return {key: float(m[key.removeprefix("val_")] or 0.0) for key in METRIC_DIRECTIONS}

    def end_stage(self, stage: Stage) -> None:
        pass


def ground_truth(samples: Sequence) -> list[dict[str, Any]]:
    """The evaluation's ground truth from the data layer's BoxSamples (original pixels)."""
    return [{"image_id": s.image_id, "width": s.width, "height": s.height, "boxes": list(s.boxes),
             "labels": list(s.labels), "ignore": list(s.ignore)} for s in samples]


@torch.no_grad()
def predict_boxes(model: torch.nn.Module, loader, dev: DeviceSettings, first_label: int = 1) -> list[dict[str, Any]]:
    """The detector's boxes for every image of ``loader``, in the original images' pixels, labels
    0-based (``first_label``: the model's label of class 0)."""
    was_training = model.training
    model.eval()
    out: list[dict[str, Any]] = []
    try:
        for images, targets in loader:
            with dev.autocast():
                results = model([dev.to_device(im) for im in images])
            for result, target in zip(results, targets):
                scale = float(target["scale"])
                out.append({
                    "image_id": int(target["image_id"]),
                    "boxes": (result["boxes"].float().cpu() / scale).numpy(),
                    "scores": result["scores"].float().cpu().numpy(),
                    "labels": (result["labels"].cpu() - first_label).numpy(),
                })
    finally:
        model.train(was_training)
    from headstart.engine.distributed import gather_items

    return gather_items(out, loader)  # one rank's share of the split: every rank gets them all
