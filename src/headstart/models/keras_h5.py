"""Read Keras applications weight files (HDF5) and map them onto timm's VGG and ResNet50.

Files are read with h5py only (never with pickle or Keras). Two layouts are understood:

* the legacy HDF5 weights layout of the Keras applications files
  (``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` and its ``_notop`` variant) and of Keras 3's
  legacy writer: root attribute ``layer_names``, one group per layer whose ``weight_names``
  attribute lists datasets such as ``block1_conv1/block1_conv1/kernel:0`` (or, in the Keras 1
  files, ``block1_conv1_W_1:0``); a full-model ``.h5`` keeps the same under ``model_weights``;
* Keras 3's ``model.save_weights('x.weights.h5')``: ``layers/<name>/vars/<i>``.

The layout conversions, done here because no library converts Keras checkpoints to timm:

* Conv2D kernels are stored (kH, kW, in, out) (HWIO) and become (out, in, kH, kW) (OIHW);
* Dense kernels are (in, out) and become (out, in);
* VGG's first Dense follows a Flatten of the channels-last (7, 7, 512) map, so its 25088 inputs
  are ordered H, W, C; they are permuted to C, H, W and the weight reshaped to timm's
  ``pre_logits.fc1`` Conv2d (4096, 512, 7, 7); the second Dense becomes the 1x1 ``fc2``;
* Keras' own preprocessing for VGG16 is "caffe" mode: RGB -> BGR, subtract the BGR mean
  (103.939, 116.779, 123.68) on the 0-255 scale, no std scaling. The first conv's input channels
  are reversed (BGR -> RGB), which is exact (zero padding is applied after normalisation in both
  models), so the timm model takes RGB like every other headstart model, and the normalisation is
  recorded with the weights as mean = (123.68, 116.779, 103.939) / 255, std = 1 / 255 on
  headstart's 0-1 scale.

Keras' ResNet50 files are mapped by :mod:`headstart.models.keras_resnet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headstart.errors import ConfigError, WeightsMismatchError
from headstart.models.mapping import MapReport

__all__ = ["H5_SUFFIXES", "KerasLayer", "read_keras_weights", "map_keras", "CAFFE_MEAN_BGR", "caffe_preprocessing"]

H5_SUFFIXES = (".h5", ".hdf5")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
"""keras.applications.imagenet_utils.preprocess_input(mode='caffe'): the mean subtracted from the
BGR channels on the 0-255 scale."""


_CAFFE_NOTE = (
    "Keras' caffe preprocessing recorded: BGR->RGB folded into the first conv,"
    " mean (123.68, 116.779, 103.939)/255, std 1/255"
)


@dataclass(frozen=True)
class KerasLayer:
    name: str
    weights: tuple[tuple[str, Any], ...]
    """(weight name, numpy array) in the file's order (kernel, bias; gamma, beta, mean, var)."""


def caffe_preprocessing() -> dict[str, Any]:
    """The store's preprocessing record for Keras' caffe mode, on headstart's RGB 0-1 scale."""
    mean_rgb = tuple(reversed(CAFFE_MEAN_BGR))
    return {
        "mean": [m / 255.0 for m in mean_rgb],
        "std": [1.0 / 255.0] * 3,
        "from": "keras caffe mode: BGR, mean (103.939, 116.779, 123.68) on 0-255, std 1;"
        " BGR->RGB folded into the first conv",
    }


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _legacy_layers(group) -> list[KerasLayer]:
    import numpy as np

    out = []
    for raw in group.attrs["layer_names"]:
        name = _text(raw)
        if name not in group:
            continue
        layer = group[name]
        names = [_text(w) for w in layer.attrs.get("weight_names", [])]
        if names:
            out.append(KerasLayer(name, tuple((w, np.asarray(layer[w])) for w in names)))
    return out


def _natural(name: str) -> tuple:
    # Keras 3 names unnamed layers conv2d, conv2d_1, ..., conv2d_10 (creation order per class);
    # h5py lists them alphabetically, which would put conv2d_10 before conv2d_2.
    base, _, suffix = name.rpartition("_")
    return (base, int(suffix)) if base and suffix.isdigit() else (name, 0)


def _keras3_layers(group) -> list[KerasLayer]:
    """Layers of a ``.weights.h5`` file. The file keeps no layer order: layers are taken by name in
    natural order, which for a VGG (all Conv2D, then all Dense) is the network's order."""
    import numpy as np

    out = []
    for name in sorted(group.keys(), key=_natural):
        layer = group[name]
        vars_ = layer.get("vars")
        if vars_ is None or not len(vars_):
            continue
        keys = sorted(vars_.keys(), key=int)
        out.append(KerasLayer(name, tuple((f"{name}/{k}", np.asarray(vars_[k])) for k in keys)))
    return out


def read_keras_weights(path: str | Path) -> list[KerasLayer]:
    """The layers that hold weights, in the file's order, as numpy arrays (read with h5py)."""
    try:
        import h5py
    except ImportError:
        raise ConfigError(
            f"Reading the Keras file {str(path)!r} needs h5py: pip install 'headstart[keras]' (or pip install h5py)."
        ) from None
    try:
        with h5py.File(str(path), "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in group.attrs:
                layers = _legacy_layers(group)
            elif "layers" in group and isinstance(group["layers"], h5py.Group):
                layers = _keras3_layers(group["layers"])
            else:
                raise WeightsMismatchError(
                    f"The HDF5 file {str(path)!r} is not a Keras weights file: it has neither a"
                    " 'layer_names' attribute (legacy .h5) nor a 'layers' group (.weights.h5)."
                    f" Top-level entries: {sorted(group.keys())[:8]}."
                )
    except OSError as exc:
        raise WeightsMismatchError(
            f"The file {str(path)!r} cannot be read as HDF5 ({exc}). Pass a Keras .h5 weights file."
        ) from None
    if not layers:
        raise WeightsMismatchError(f"The Keras file {str(path)!r} holds no layer weights.")
    return layers


def _kind(layer: KerasLayer) -> str:
    shapes = [w.shape for _, w in layer.weights]
    if len(shapes[0]) == 4 and len(shapes) <= 2:
        return "conv"
    if len(shapes[0]) == 2 and len(shapes) <= 2:
        return "dense"
    if len(shapes) == 4 and all(len(s) == 1 for s in shapes):
        return "bn"
    return "other"


def _describe(layers: list[KerasLayer]) -> str:
    kinds = [_kind(x) for x in layers]
    return f"{kinds.count('conv')} Conv2D, {kinds.count('dense')} Dense, {kinds.count('bn')} BatchNorm"


def map_keras(layers: list[KerasLayer], target: dict, file: str, model: str) -> tuple[dict, MapReport, dict[str, Any]]:
    """Map Keras layers onto timm's state dict ``target`` for ``model``; returns the mapped
    tensors, how each was placed and the preprocessing to record with them."""
    from headstart.models.keras_resnet import is_keras_resnet, map_keras_resnet50

    if is_keras_resnet(layers):
        mapped, report, arch = map_keras_resnet50(layers, target, file, model)
        report.notes.append(_CAFFE_NOTE)
        return mapped, report, {"preprocessing": caffe_preprocessing(), **arch}
    kinds = [_kind(x) for x in layers]
    if not model.startswith("vgg") or "_bn" in model:
        raise WeightsMismatchError(
            f"headstart maps Keras applications files onto timm's resnet50 and its VGG models"
            f" without BatchNorm (vgg11, vgg13, vgg16, vgg19); got model {model!r} for {file!r}"
            f" ({_describe(layers)} layers). Convert other models to a PyTorch state dict first."
        )
    if "other" in kinds or "bn" in kinds:
        bad = next(x for x, k in zip(layers, kinds, strict=True) if k in ("other", "bn"))
        raise WeightsMismatchError(
            f"The Keras file {file!r} has a layer {bad.name!r} with weights of shapes"
            f" {[w.shape for _, w in bad.weights]}, which a VGG does not have; it is not a Keras VGG."
        )
    mapped, report = _map_vgg(layers, kinds, target(), file, model)
    report.notes.append(_CAFFE_NOTE)
    return mapped, report, {"preprocessing": caffe_preprocessing()}


def _map_vgg(layers, kinds, target, file, model):
    import numpy as np
    import torch

    convs = [k for k in target if k.startswith("features.") and k.endswith(".weight")]
    head = ["pre_logits.fc1", "pre_logits.fc2", "head.fc"]
    n_conv, n_dense = kinds.count("conv"), kinds.count("dense")
    if kinds[:n_conv] != ["conv"] * n_conv or n_conv != len(convs) or n_dense not in (0, len(head)):
        raise WeightsMismatchError(
            f"The Keras file {file!r} has {n_conv} Conv2D and {n_dense} Dense layers; timm's"
            f" {model!r} has {len(convs)} convolutions and 3 fully connected layers (the file may"
            " have 0 of them: include_top=False). Check the model name (vgg11/13/16/19)."
        )
    out, report = {}, MapReport()

    def put(key: str, array, detail: str | None, kind: str) -> None:
        value = torch.from_numpy(np.ascontiguousarray(array))
        if tuple(value.shape) != tuple(target[key].shape):
            raise WeightsMismatchError(
                f"The Keras tensor for timm's {key!r} has shape {tuple(value.shape)} after the"
                f" layout conversion, timm's has {tuple(target[key].shape)}. The file {file!r} is"
                f" not {model!r} (another width or input size?); nothing was imported."
            )
        out[key] = value
        report.add(kind, detail=detail)

    for i, (layer, wkey) in enumerate(zip(layers[:n_conv], convs, strict=True)):
        kernel = layer.weights[0][1].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        detail = f"{layer.name} kernel HWIO -> {wkey} OIHW"
        if i == 0:
            kernel = kernel[:, ::-1]  # BGR input channels -> RGB (Keras caffe preprocessing)
            detail += ", input channels BGR -> RGB"
        put(wkey, kernel, detail if i == 0 else None, "transposed")
        if len(layer.weights) > 1:
            put(wkey[: -len("weight")] + "bias", layer.weights[1][1], None, "by order")
    if n_dense:
        channels = target["pre_logits.fc1.weight"].shape[1]
        for j, (layer, prefix) in enumerate(zip(layers[n_conv:], head, strict=True)):
            kernel = layer.weights[0][1]
            shape = tuple(target[prefix + ".weight"].shape)
            if j == 0:
                k_in, k_out = kernel.shape
                side = int(round((k_in / channels) ** 0.5))
                if side * side * channels != k_in:
                    raise WeightsMismatchError(
                        f"The Keras layer {layer.name!r} has {k_in} inputs, not a flattened"
                        f" square map of {channels} channels; {file!r} is not a Keras VGG top."
                    )
                # Flatten of (H, W, C) -> (C, H, W): the conv over the whole map.
                w = kernel.reshape(side, side, channels, k_out).transpose(3, 2, 0, 1)
                put(
                    prefix + ".weight",
                    w,
                    f"{layer.name} (in={k_in}, out={k_out}) Flatten H,W,C -> {prefix}.weight {shape} C,H,W",
                    "by reshape",
                )
            else:
                w = kernel.T.reshape(shape)
                put(prefix + ".weight", w, f"{layer.name} (in, out) -> {prefix}.weight {shape}", "transposed")
            put(prefix + ".bias", layer.weights[1][1], None, "by order")
    else:
        report.notes.append(
            "the file has no top (include_top=False): timm's pre_logits.fc1/fc2 and head.fc keep"
            " their random initialisation and are trained by fit"
        )
    return out, report
