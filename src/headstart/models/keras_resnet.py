"""Keras applications ResNet50 (``resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5``) onto
timm's ``resnet50``, exactly.

Keras' ResNet50 is the original ResNet v1: a stage's first block downsamples in its first 1x1
convolution (stride 2), then runs the 3x3 convolution on the smaller map. timm's ``resnet50`` is
v1.5: stride 2 in the 3x3 convolution. The two are made the same function without changing any
weight: a 1x1 convolution commutes with subsampling, and BatchNorm and ReLU are pointwise, so
"subsample, then a 3x3 conv with padding 1" equals "a 3x3 conv with dilation 2, padding 2 and
stride 2 on the full map" (output position i reads full-map positions 2i-2, 2i, 2i+2, zero
outside, for even and odd sizes). So ``layer2.0.conv2``, ``layer3.0.conv2`` and
``layer4.0.conv2`` get dilation 2 and padding 2; that change is recorded with the weights
(``conv_dilation``) and applied by ``create_model`` and by every reader of a run's model.

The conversions (by layer name; both the Keras 2.2+ names ``conv2_block1_1_conv`` and the
original names ``res2a_branch2a`` / ``bn2a_branch2a`` / ``fc1000`` are understood):

* Conv2D kernels (kH, kW, in, out) -> (out, in, kH, kW); the first conv's input channels are
  reversed (BGR -> RGB, Keras' caffe preprocessing, as for VGG);
* Keras' convolutions have biases, timm's do not: each bias b is folded into the BatchNorm that
  follows it (BN(conv + b) with running mean m equals BN(conv) with running mean m - b);
* Keras' BatchNorm epsilon is 1.001e-5, timm's 1e-5: the difference is added to the running
  variance (var + 1.001e-5 == (var + 1e-8) + 1e-5), so the normalisation is the same;
* the Dense kernel (2048, 1000) -> ``fc.weight`` (1000, 2048).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from headstart.errors import WeightsMismatchError
from headstart.models.mapping import MapReport

if TYPE_CHECKING:  # pragma: no cover
    from headstart.models.keras_h5 import KerasLayer

__all__ = ["KERAS_BN_EPSILON", "RESNET_V1_DILATION", "is_keras_resnet", "map_keras_resnet50"]

KERAS_BN_EPSILON = 1.001e-5
RESNET_V1_DILATION = {"layer2.0.conv2": 2, "layer3.0.conv2": 2, "layer4.0.conv2": 2}
"""The recorded architecture change that makes timm's resnet50 (v1.5) compute ResNet v1."""

_OLD = re.compile(r"^(res|bn)(\d)([a-z])_branch(1|2a|2b|2c)$")
_NEW = re.compile(r"^conv(\d)_block(\d+)_(\d)_(conv|bn)$")
_BRANCH = {"1": 0, "2a": 1, "2b": 2, "2c": 3}


def _canonical(name: str) -> str:
    """The Keras 2.2+ layer name for the names of the original 2016 file."""
    special = {"conv1": "conv1_conv", "bn_conv1": "conv1_bn", "fc1000": "predictions"}
    if name in special:
        return special[name]
    m = _OLD.match(name)
    if m:
        kind = "conv" if m.group(1) == "res" else "bn"
        block = ord(m.group(3)) - ord("a") + 1
        return f"conv{m.group(2)}_block{block}_{_BRANCH[m.group(4)]}_{kind}"
    return name


def is_keras_resnet(layers: list[KerasLayer]) -> bool:
    names = {_canonical(x.name) for x in layers}
    return "conv1_conv" in names and "conv2_block1_1_conv" in names


def _timm_prefix(name: str) -> str | None:
    """timm's module for a canonical Keras layer name (None when it has no counterpart)."""
    if name == "conv1_conv":
        return "conv1"
    if name == "conv1_bn":
        return "bn1"
    if name == "predictions":
        return "fc"
    m = _NEW.match(name)
    if not m:
        return None
    stage, block, idx, kind = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    base = f"layer{stage - 1}.{block - 1}"
    if idx == 0:
        return f"{base}.downsample.{0 if kind == 'conv' else 1}"
    return f"{base}.{kind}{idx}"


def map_keras_resnet50(
    layers: list[KerasLayer], target: Callable[[], dict], file: str, model: str, bn_eps: float = 1e-5
) -> tuple[dict, MapReport, dict[str, Any]]:
    """Map a Keras ResNet50 file onto timm's ``resnet50``; returns the tensors, the report and the
    conversion record (``conv_dilation``)."""
    import numpy as np
    import torch

    if model.split(".", 1)[0] != "resnet50":
        raise WeightsMismatchError(
            f"The Keras file {file!r} holds Keras' ResNet50; import it as --model resnet50 (got {model!r})."
        )
    tgt = target()
    by_name = {_canonical(x.name): x for x in layers}
    out, report = {}, MapReport()
    unknown = [x.name for x in layers if _timm_prefix(_canonical(x.name)) is None]
    if unknown:
        raise WeightsMismatchError(
            f"The Keras file {file!r} has layers that Keras' ResNet50 does not have ({unknown[:5]});"
            " it is another model. Nothing was imported."
        )

    def put(key: str, array, kind: str, detail: str | None = None) -> None:
        value = torch.from_numpy(np.ascontiguousarray(array)).to(tgt[key].dtype)
        if tuple(value.shape) != tuple(tgt[key].shape):
            raise WeightsMismatchError(
                f"The Keras tensor for timm's {key!r} has shape {tuple(value.shape)} after the layout"
                f" conversion, timm's has {tuple(tgt[key].shape)}. {file!r} is not a Keras ResNet50."
            )
        out[key] = value
        report.add(kind, detail=detail)

    for name, layer in by_name.items():
        prefix = _timm_prefix(name)
        values = [np.asarray(v, dtype=np.float64) for _, v in layer.weights]
        if name.endswith("_conv"):
            kernel = values[0].transpose(3, 2, 0, 1)
            detail = None
            if name == "conv1_conv":
                kernel = kernel[:, ::-1]  # BGR input channels -> RGB
                detail = "conv1_conv kernel HWIO -> conv1.weight OIHW, input channels BGR -> RGB"
            put(prefix + ".weight", kernel, "transposed", detail)
        elif name.endswith("_bn"):
            gamma, beta, mean, var = values
            conv = by_name.get(name[: -len("bn")] + "conv")
            bias = conv.weights[1][1] if conv is not None and len(conv.weights) > 1 else None
            if bias is not None:
                mean = mean - np.asarray(bias, dtype=np.float64)
            var = var + (KERAS_BN_EPSILON - bn_eps)
            put(prefix + ".weight", gamma, "by name")
            put(prefix + ".bias", beta, "by name")
            put(prefix + ".running_mean", mean, "folded")
            put(prefix + ".running_var", var, "folded")
        else:  # predictions
            put("fc.weight", values[0].T, "transposed", f"{layer.name} (in, out) -> fc.weight (out, in)")
            put("fc.bias", values[1], "by name")
    missing = [k for k in tgt if not k.endswith("num_batches_tracked") and k not in out and not k.startswith("fc.")]
    if missing:
        raise WeightsMismatchError(
            f"The Keras file {file!r} lacks {len(missing)} of timm's resnet50 tensors (first"
            f" {missing[:3]}); it is not a complete Keras ResNet50. Nothing was imported."
        )
    report.notes.append("conv biases folded into the following BatchNorm's running_mean")
    report.notes.append(
        f"Keras BatchNorm epsilon {KERAS_BN_EPSILON:g} vs timm's {bn_eps:g}: the difference is added to running_var"
    )
    report.notes.append(
        "ResNet v1 downsampling (stride in the 1x1 conv) reproduced exactly: dilation 2,"
        " padding 2 in " + ", ".join(RESNET_V1_DILATION)
    )
    if "predictions" not in by_name:
        report.notes.append(
            "the file has no top (include_top=False): timm's fc keeps its random initialisation and is trained by fit"
        )
    return out, report, {"conv_dilation": dict(RESNET_V1_DILATION)}
