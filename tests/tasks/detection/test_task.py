"""The detection task's guard against a collapsed FCOS box-regression head (issue 12)."""

import pytest
import torch

from headstart.engine.device import resolve_device
from headstart.engine.stages import Stage
from headstart.engine.trainer import TrainingDiverged
from headstart.tasks.detection.models import DetectorSpec, create_detector
from headstart.tasks.detection.task import COLLAPSE_MIN_STEPS, DetectionTask, check_box_regression

_MESSAGE = (r"The box-regression \(GIoU\) loss stayed at 1\.0000-1\.0000 for all 20 steps of an epoch of stage"
            r" 'head': every predicted box has zero size .* lower learning rate \(train\.lr\), another detector")


def test_check_box_regression_stops_only_a_whole_epoch_at_loss_one():
    with pytest.raises(TrainingDiverged, match=_MESSAGE):
        check_box_regression([1.0] * COLLAPSE_MIN_STEPS, "an epoch of stage 'head'")
    check_box_regression([1.0] * (COLLAPSE_MIN_STEPS - 1) + [0.98], "e")  # one step moved: alive
    check_box_regression([1.0] * (COLLAPSE_MIN_STEPS - 1), "e")  # too short an epoch to tell


def _task(model):
    def make_loader(split, seed):
        raise AssertionError("validate must stop before reading the val split")

    return DetectionTask(model, make_loader=make_loader, dev=resolve_device("cpu"), classes=["a", "b"],
                         val_samples=[], weight_decay=0.0, backbone_lr_ratio=0.3, first_label=0)


def test_fcos_task_stops_when_every_box_of_an_epoch_has_zero_size():
    torch.manual_seed(0)
    spec = DetectorSpec("fcos", "test_resnet", 2, 64, (0.5,) * 3, (0.5,) * 3, fpn_channels=32)
    model = create_detector(spec)
    reg = model.head.regression_head.bbox_reg
    torch.nn.init.zeros_(reg.weight)
    torch.nn.init.constant_(reg.bias, -1.0)  # planted: every side distance below the ReLU's kink
    task = _task(model)
    target = {"boxes": torch.tensor([[8.0, 8.0, 40.0, 48.0]]), "labels": torch.tensor([1])}
    batch = ([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], [target, target])
    stage = Stage("head", 1, 1e-3)
    model.train()
    with torch.no_grad():
        for _ in range(COLLAPSE_MIN_STEPS):
            task.training_step(stage, batch)
    with pytest.raises(TrainingDiverged, match=_MESSAGE):
        task.validate(stage)


@pytest.mark.parametrize(("backbone", "first_trained"), [("test_resnet", "layer2."), ("test_efficientnet", "blocks.2.")])
def test_frozen_stride_keeps_the_stem_and_high_resolution_stages_frozen_in_every_stage(backbone, first_trained):
    spec = DetectorSpec("fcos", backbone, 2, 64, (0.5,) * 3, (0.5,) * 3, fpn_channels=32)
    model = create_detector(spec)
    task = DetectionTask(model, make_loader=None, dev=resolve_device("cpu"), classes=["a", "b"], val_samples=[],
                         weight_decay=0.0, backbone_lr_ratio=0.3, frozen_stride=4)
    body = dict(model.backbone.body.named_parameters())
    names = list(body)
    first = next(i for i, n in enumerate(names) if n.startswith(first_trained))
    task.setup_stage(Stage("head", 1, 1e-3), [])
    assert not any(p.requires_grad for p in body.values())
    groups = task.setup_stage(Stage("finetune", 1, 1e-3), [])
    assert not any(body[n].requires_grad for n in names[:first])  # stem, stride-2 and stride-4 stages
    assert all(body[n].requires_grad for n in names[first:])
    trained = {id(p) for g in groups for p in g["params"]}
    assert not trained & {id(body[n]) for n in names[:first]}
    assert all(p.requires_grad for p in model.head.parameters())


def test_frozen_stride_zero_trains_the_whole_backbone():
    spec = DetectorSpec("fcos", "test_resnet", 2, 64, (0.5,) * 3, (0.5,) * 3, fpn_channels=32)
    model = create_detector(spec)
    task = DetectionTask(model, make_loader=None, dev=resolve_device("cpu"), classes=["a", "b"], val_samples=[],
                         weight_decay=0.0, backbone_lr_ratio=0.3, frozen_stride=0)
    task.setup_stage(Stage("finetune", 1, 1e-3), [])
    assert all(p.requires_grad for p in model.backbone.body.parameters())
