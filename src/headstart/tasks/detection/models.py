"""Detectors from torchvision on any timm backbone that supports ``features_only``.

torchvision provides the detectors (Faster R-CNN, FCOS, RetinaNet: their heads, losses, box coding,
NMS and resizing) and the FeaturePyramidNetwork; timm provides the backbones and their
pretrained_cfg. What neither provides is the joint between them: :class:`TimmFPN` turns a timm
``features_only`` model into the ``OrderedDict`` of pyramid levels with ``out_channels`` that
torchvision's detectors take (torchvision's own ``BackboneWithFPN`` expects torchvision's module
naming, through ``IntermediateLayerGetter``). It is a dozen lines on purpose.

The backbone's BatchNorm layers are frozen (timm's ``freeze_batch_norm_2d``): detection batches
are small, and batch statistics of 2-8 images would wash out the pretrained ones.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

__all__ = ["DETECTORS", "DetectorSpec", "TimmFPN", "create_backbone", "create_detector", "detector_strides",
           "init_fcos_regression", "backbone_parameters"]

DETECTORS = ("fasterrcnn", "fcos", "retinanet")


@dataclass(frozen=True)
class DetectorSpec:
    """Everything needed to rebuild a detector from its run folder (saved in model/model.json)."""

    detector: str
    backbone: str
    num_classes: int  # the user's classes; the model has num_classes + 1 outputs (0 = background)
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None  # per pyramid level
    aspect_ratios: tuple[float, ...] | None = None
    out_indices: tuple[int, ...] = (2, 3, 4)
    fpn_channels: int = 128

    @property
    def first_label(self) -> int:
        """The model's label of the first class: 1 for Faster R-CNN (0 is its background class),
        0 for FCOS and RetinaNet (sigmoid heads: no background class)."""
        return 1 if self.detector == "fasterrcnn" else 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for key in ("mean", "std", "aspect_ratios", "out_indices"):
            d[key] = list(d[key]) if d[key] is not None else None
        d["anchor_sizes"] = [list(s) for s in self.anchor_sizes] if self.anchor_sizes is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DetectorSpec":
        d = dict(d)
        for key in ("mean", "std", "aspect_ratios", "out_indices"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if d.get("anchor_sizes") is not None:
            d["anchor_sizes"] = tuple(tuple(float(v) for v in s) for s in d["anchor_sizes"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class TimmFPN(nn.Module):
    """A timm ``features_only`` backbone under torchvision's FeaturePyramidNetwork.

    ``extra``: ``'pool'`` adds a max-pooled level (Faster R-CNN's RPN), ``'p6p7'`` two strided
    convolutions (RetinaNet, FCOS). ``forward`` returns the levels as torchvision's detectors expect.
    """

    def __init__(self, name: str, *, out_indices: Sequence[int] = (2, 3, 4), out_channels: int = 128,
                 extra: str = "pool", freeze_bn: bool = True):
        super().__init__()
        import timm
        from timm.layers import freeze_batch_norm_2d
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

        body = timm.create_model(name, pretrained=False, features_only=True, out_indices=tuple(out_indices))
        self.body = freeze_batch_norm_2d(body) if freeze_bn else body
        self.strides = tuple(int(r) for r in body.feature_info.reduction())
        channels = list(body.feature_info.channels())
        blocks = LastLevelMaxPool() if extra == "pool" else LastLevelP6P7(out_channels, out_channels)
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=blocks)
        self.out_channels = out_channels
        self.extra = extra

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))

    @property
    def level_strides(self) -> tuple[int, ...]:
        """Stride of every level the detector sees (the backbone's, then the extra ones)."""
        extra = (self.strides[-1] * 2,) if self.extra == "pool" else (self.strides[-1] * 2, self.strides[-1] * 4)
        return self.strides + extra


def detector_strides(backbone: str, out_indices: Sequence[int] = (2, 3, 4), detector: str = "fasterrcnn") -> tuple[int, ...]:
    """The pyramid levels' strides for ``backbone`` (read from timm's feature_info, no weights)."""
    import timm

    info = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=tuple(out_indices)).feature_info
    strides = tuple(int(r) for r in info.reduction())
    return strides + ((strides[-1] * 2,) if detector == "fasterrcnn" else (strides[-1] * 2, strides[-1] * 4))


def load_backbone_weights(fpn: TimmFPN, state_dict: Mapping[str, torch.Tensor], name: str) -> int:
    """Load an ImageNet classification checkpoint of ``name`` (timm keys) into the feature body:
    every tensor the body has must be in the file with its shape (the classifier and the layers
    past the last feature level are not used). Returns the number of tensors loaded."""
    from headstart.errors import WeightsMismatchError

    own = fpn.body.state_dict()
    # FrozenBatchNorm2d has no num_batches_tracked; everything else keeps timm's names
    missing = [k for k in own if k not in state_dict]
    wrong = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        raise WeightsMismatchError(
            f"The {name} weights do not fit its feature backbone: {len(missing)} tensor(s) missing"
            f" (e.g. {missing[:3]}) and {len(wrong)} of another shape (e.g. {wrong[:3]}). Import the"
            f" model's ImageNet weights with `headstart weights import FILE --model {name}`."
        )
    fpn.body.load_state_dict({k: state_dict[k] for k in own}, strict=True)
    return len(own)


def create_backbone(spec: DetectorSpec, *, freeze_bn: bool = True) -> TimmFPN:
    """The timm body and pyramid of ``spec``'s detector, without weights; its ``level_strides``
    are what anchors are sized for (build it once and pass it to :func:`create_detector`)."""
    extra = "pool" if spec.detector == "fasterrcnn" else "p6p7"
    return TimmFPN(spec.backbone, out_indices=spec.out_indices, out_channels=spec.fpn_channels, extra=extra,
                   freeze_bn=freeze_bn)


def create_detector(spec: DetectorSpec, *, backbone_state: Mapping[str, torch.Tensor] | None = None,
                    freeze_bn: bool = True, backbone: TimmFPN | None = None) -> nn.Module:
    """A torchvision detector for ``spec``; its labels start at ``spec.first_label``. Inputs are
    float images in [0, 1] whose longer side is ``spec.image_size``; the detector normalises with
    the backbone's mean/std and keeps that size (min_size = max_size = image_size). ``backbone``:
    one already built by :func:`create_backbone` for this spec (else a new one)."""
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    backbone = backbone if backbone is not None else create_backbone(spec, freeze_bn=freeze_bn)
    if backbone_state is not None:
        load_backbone_weights(backbone, backbone_state, spec.backbone)
    common = dict(min_size=spec.image_size, max_size=spec.image_size, image_mean=list(spec.mean),
                  image_std=list(spec.std))
    n_out = spec.num_classes + spec.first_label
    levels = len(backbone.level_strides)
    if spec.detector == "fcos":
        # anchor-free: one 'anchor' per location whose size is the level's stride (torchvision's
        # convention). Scores down to 0.05 are kept, as for the other two (torchvision's FCOS
        # defaults to 0.2, which cuts the low-recall end of the AP curve).
        anchors = AnchorGenerator(tuple((s,) for s in backbone.level_strides), ((1.0,),) * levels)
        model = FCOS(backbone, n_out, anchor_generator=anchors, score_thresh=0.05, **common)
        init_fcos_regression(model)
        return model
    sizes = spec.anchor_sizes or default_anchor_sizes(backbone.level_strides, spec.detector)
    ratios = spec.aspect_ratios or (0.5, 1.0, 2.0)
    anchors = AnchorGenerator(tuple(tuple(s) for s in sizes), (tuple(ratios),) * levels)
    if spec.detector == "retinanet":
        from torchvision.models.detection.retinanet import RetinaNetHead

        head = RetinaNetHead(backbone.out_channels, anchors.num_anchors_per_location()[0], n_out)
        return RetinaNet(backbone, n_out, anchor_generator=anchors, head=head, **common)
    roi = MultiScaleRoIAlign(featmap_names=[str(i) for i in range(len(spec.out_indices))], output_size=7,
                             sampling_ratio=2)
    from torchvision.models.detection.rpn import RPNHead

    rpn_head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0])
    return FasterRCNN(backbone, n_out, rpn_anchor_generator=anchors, rpn_head=rpn_head, box_roi_pool=roi, **common)


#: FCOS's initial box-side distances, in strides (BENCHMARKS.md, "Detection": issue 12).
FCOS_REG_BIAS = 1.0


def init_fcos_regression(model: nn.Module, bias: float = FCOS_REG_BIAS) -> None:
    """Start torchvision's FCOS regression outputs on the live side of their ReLU.

    torchvision's FCOSRegressionHead predicts the four side distances as ``relu(conv(x))`` with the
    conv's bias at 0 and weights N(0, 0.01), and trains them with the GIoU loss. At that start
    every predicted box is a fraction of a stride wide and about half the outputs sit below the
    ReLU's kink, with the share set by the random init and the backbone's features. A box that is
    degenerate in one direction (both of its sides at 0) has zero intersection with its target
    whatever the other sides do, so the GIoU loss is exactly 1 and sends no gradient to any of its
    four sides. When enough foreground boxes start that way (tf_efficientnet_lite1 at 160 px on
    the benchmark set), the regression never leaves loss 1.0 and every predicted box keeps zero
    size. With the bias at ``bias`` (sides of one stride, a box two strides wide: inside the range
    of every pyramid level's targets) all outputs start positive, every foreground box has an area
    and a gradient, whatever the backbone. The FCOS paper's own head used exp() here, which has no
    dead side; torchvision's ReLU does, hence this init.
    """
    nn.init.constant_(model.head.regression_head.bbox_reg.bias, bias)


def default_anchor_sizes(strides: Sequence[int], detector: str) -> tuple[tuple[float, ...], ...]:
    """torchvision's rule when the data says nothing: 8x the stride per level (32 px at stride 4),
    three octave scales per level for RetinaNet."""
    if detector == "retinanet":
        return tuple(tuple(4.0 * s * 2 ** (k / 3) for k in range(3)) for s in strides)
    return tuple((8.0 * s,) for s in strides)


def backbone_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone body parameters, everything else: FPN, RPN, heads)."""
    body = {id(p) for p in model.backbone.body.parameters()}
    params = list(model.parameters())
    return [p for p in params if id(p) in body], [p for p in params if id(p) not in body]


def early_backbone_parameters(model: nn.Module, max_stride: int) -> list[nn.Parameter]:
    """The body's parameters up to and including its last stage whose output stride is at most
    ``max_stride`` (the stem and the high-resolution stages: torchvision's ``trainable_backbone_layers``
    counted by stride, so it means the same on every timm backbone). Empty when ``max_stride`` is 0,
    or when the body is not a timm ``features_only`` model (a whole torchvision detector)."""
    body = model.backbone.body
    info = getattr(getattr(body, "feature_info", None), "info", None)
    if max_stride <= 0 or not info:
        return []
    stages = [i["module"] for i in info if int(i["reduction"]) <= max_stride]
    if not stages:
        return []
    # features_only models keep timm's module names, or flatten "stages.0" into "stages_0"
    prefixes = (stages[-1] + ".", stages[-1].replace(".", "_") + ".")
    params = list(body.named_parameters())
    last = max((k for k, (name, _) in enumerate(params) if name.startswith(prefixes)), default=-1)
    return [p for _, p in params[: last + 1]]
