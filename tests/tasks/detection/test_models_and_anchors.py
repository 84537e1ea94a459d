"""Detectors on timm backbones, and anchors chosen from the training boxes."""

import numpy as np
import pytest
import torch

from headstart.tasks.detection.anchors import anchor_coverage, choose_anchors
from headstart.tasks.detection.models import (
    DETECTORS,
    DetectorSpec,
    create_detector,
    default_anchor_sizes,
    detector_strides,
    load_backbone_weights,
)


def _spec(detector, **kw):
    return DetectorSpec(detector, "test_resnet", 2, 64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), fpn_channels=32, **kw)


@pytest.mark.parametrize("detector", DETECTORS)
def test_each_detector_trains_and_predicts_on_a_timm_backbone(detector):
    torch.manual_seed(0)
    model = create_detector(_spec(detector))
    images = [torch.rand(3, 64, 48), torch.rand(3, 40, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]  # a negative image
    model.train()
    losses = model(images, targets)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4
    # the backbone's BatchNorm is frozen: its statistics never move
    assert not [m for m in model.backbone.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_spec_round_trips_through_json():
    spec = _spec("retinanet", anchor_sizes=((8.0, 10.0), (16.0, 20.0)), aspect_ratios=(0.5, 1.0))
    assert DetectorSpec.from_dict(spec.to_dict()) == spec


def test_backbone_weights_load_and_refuse_a_wrong_file():
    import timm

    from headstart.errors import WeightsMismatchError
    from headstart.tasks.detection.models import TimmFPN

    classifier = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    fpn = TimmFPN("test_resnet", out_channels=16)
    assert load_backbone_weights(fpn, classifier.state_dict(), "test_resnet") > 0
    some = next(k for k in fpn.body.state_dict() if k.endswith("weight"))
    assert torch.equal(fpn.body.state_dict()[some], classifier.state_dict()[some])
    other = timm.create_model("test_efficientnet", pretrained=False).state_dict()
    with pytest.raises(WeightsMismatchError, match=r"The test_resnet weights do not fit its feature backbone: .*"
                                                   r"headstart weights import FILE --model test_resnet"):
        load_backbone_weights(fpn, other, "test_resnet")


def test_anchor_coverage_by_hand():
    # a 10x10 box and one 10x10 anchor: IoU 1; a 10x40 box: IoU 100/400 = 0.25 with it
    assert anchor_coverage(np.array([[10, 10], [10, 40]]), [[10.0]], [1.0]) == 0.5
    # an anchor of ratio 4 (h/w), size 20: 10 x 40
    assert anchor_coverage(np.array([[10, 40]]), [[20.0]], [4.0]) == 1.0


def test_anchors_from_small_boxes_cover_them_better_than_coco_defaults():
    rng = np.random.default_rng(0)
    side = rng.uniform(8, 40, size=500)
    wh = np.stack([side, side * rng.uniform(0.8, 1.6, size=500)], axis=1)
    strides = detector_strides("test_resnet", detector="retinanet")
    default = default_anchor_sizes(strides, "retinanet")
    choice = choose_anchors(wh, strides, default)
    assert choice.coverage > 0.9 > choice.default_coverage
    assert choice.coverage == pytest.approx(anchor_coverage(wh, choice.sizes, choice.aspect_ratios))
    assert "match" in choice.describe() and choice.n_boxes == 500


def test_fcos_regression_starts_alive_so_the_box_loss_has_a_gradient():
    # issue 12: torchvision's FCOS head predicts relu(conv(x)) side distances from a zero bias, so
    # about half start dead; a box with both sides of one direction at 0 has GIoU loss exactly 1
    # and no gradient. tf_efficientnet_lite1 at 160 px stayed at loss 1.0 with zero-size boxes.
    torch.manual_seed(0)
    model = create_detector(_spec("fcos"))
    seen = {}
    model.head.regression_head.register_forward_hook(lambda m, i, o: seen.update(reg=o[0]))
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 44.0], [30.0, 20.0, 60.0, 60.0]]),
                "labels": torch.tensor([0, 1])}] * 2
    model.train()
    losses = model(images, targets)
    assert bool((seen["reg"] > 0).all()), f"{float((seen['reg'] <= 0).float().mean()):.0%} of the side distances are dead"
    assert float(losses["bbox_regression"]) < 1.0  # every foreground box has an area, so GIoU > 0
    losses["bbox_regression"].backward()
    grad = model.head.regression_head.bbox_reg.bias.grad
    assert bool((grad != 0).all()) and bool((grad < 0).all())  # all four sides are pulled outwards
