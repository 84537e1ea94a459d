"""Build timm models with resolved pretrained weights, and freeze/unfreeze parts of them.

Weights are loaded with timm's own machinery (``pretrained_cfg_overlay=dict(file=...)``, which also
applies the model's checkpoint filter) and *strictly*: the model is built with the head size of the
file, so that every tensor must load, and the classifier is then replaced with a fresh one of
``num_outputs`` (timm itself would drop the head and silently load non-strictly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from headstart._validation import check_number
from headstart.errors import WeightsMismatchError, WeightsNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from headstart.models.resolve import ResolvedWeights

__all__ = [
    "create_model",
    "apply_architecture_changes",
    "architecture_changes",
    "feature_dim",
    "head_parameters",
    "backbone_parameters",
    "set_trainable",
    "freeze_batchnorm",
    "unfreeze_batchnorm",
]

_HOOK_ATTR = "_headstart_bn_hook"


def _classifier_names(cfg: dict) -> tuple[str, ...]:
    names = cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _file_shapes(path) -> dict[str, tuple[int, ...]]:
    from headstart.models.store import load_state_dict_file

    if str(path).lower().endswith(".safetensors"):  # header only, no tensor data read
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        if shapes and not all(k.startswith("module.") for k in shapes):
            return shapes

    return {k: tuple(v.shape) for k, v in load_state_dict_file(path, mmap=True).items()}


def _mismatch(model_name: str, path, exc: Exception) -> WeightsMismatchError:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    detail = " ".join(lines[:3])[:600]
    return WeightsMismatchError(
        f"The weights file {str(path)!r} does not load into timm's {model_name!r}: {detail}"
        f" If the file holds this architecture under other key names, convert it once with"
        f" `headstart weights import FILE --model {model_name} --map by-order`."
    )


_DILATION_ATTR = "headstart_conv_dilation"


def apply_architecture_changes(model: "torch.nn.Module", record: dict | None) -> "torch.nn.Module":
    """Apply what a weights file or a run's model.json records about the architecture:
    ``conv_dilation`` ({module name: dilation}) sets those 3x3 convolutions' dilation and keeps
    their output size (padding = dilation). Keras' ResNet50 (v1) needs it in timm's resnet50; see
    :mod:`headstart.models.keras_resnet`. No weight changes shape."""
    spec = (record or {}).get("conv_dilation") or {}
    for name, dilation in spec.items():
        try:
            conv = model.get_submodule(name)
        except AttributeError:
            raise WeightsMismatchError(
                f"The weights record a dilation for {name!r}, which timm's model does not have;"
                " they belong to another architecture. Re-import them with the right --model."
            ) from None
        k = conv.kernel_size[0]
        conv.dilation = (int(dilation), int(dilation))
        conv.padding = (int(dilation) * (k - 1) // 2,) * 2
    if spec:
        setattr(model, _DILATION_ATTR, {str(k): int(v) for k, v in spec.items()})
    return model


def architecture_changes(model: "torch.nn.Module") -> dict:
    """The record :func:`apply_architecture_changes` applied to ``model`` (``{}`` for plain timm),
    to save in a run's model.json so that predict and export rebuild the same network."""
    spec = getattr(model, _DILATION_ATTR, None)
    return {"conv_dilation": dict(spec)} if spec else {}


def _apply_recorded_preprocessing(model, path) -> None:
    """Apply what the imported weights file records: its architecture changes, and its
    normalisation (Keras' caffe mode, for example) put into ``model.pretrained_cfg``, where
    ``Preprocessing.from_model`` (fit, rank, doctor) reads it; the run then saves both with the
    model, so predict and export use them too."""
    from headstart.models.store import recorded_conversion, recorded_preprocessing

    apply_architecture_changes(model, recorded_conversion(path))
    pre = recorded_preprocessing(path)
    if pre is None:
        return
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg.update(mean=tuple(float(v) for v in pre["mean"]), std=tuple(float(v) for v in pre["std"]))
    model.pretrained_cfg = cfg
    model.default_cfg = cfg  # timm's older alias


def create_model(
    model_name: str,
    num_outputs: int,
    *,
    weights: "ResolvedWeights | None",
    drop_rate: float = 0.0,
    keep_head: bool = False,
) -> "torch.nn.Module":
    """A timm model with ``num_outputs`` outputs (1 for a binary BCE head).

    ``weights=None`` gives a random initialisation. ``weights.source == 'download'`` uses timm's
    ``pretrained=True`` (reached only when downloads were allowed). Otherwise the backbone is
    loaded strictly from ``weights.path`` and the classifier is new (``keep_head=True`` keeps the
    file's classifier; ``num_outputs`` must then equal its size).
    """
    import timm

    num_outputs = check_number("num_outputs", num_outputs, kind=int, low=1, closed="left")
    drop_rate = check_number("drop_rate", drop_rate, low=0, high=1, closed="left")
    if weights is None:
        return timm.create_model(model_name, pretrained=False, num_classes=num_outputs,
                                 drop_rate=drop_rate)
    if weights.source == "download":
        return timm.create_model(model_name, pretrained=True, num_classes=num_outputs,
                                 drop_rate=drop_rate)
    path = weights.path
    if path is None or not path.is_file():
        raise WeightsNotFoundError(
            f"The weights file {str(path)!r} for {model_name!r} no longer exists. Resolve the"
            " weights again, or re-import them with"
            f" `headstart weights import FILE --model {model_name}`."
        )
    from headstart.models.resolve import pretrained_cfg

    cfg = pretrained_cfg(model_name) or {}
    shapes = _file_shapes(path)
    heads = [f"{c}.weight" for c in _classifier_names(cfg) if f"{c}.weight" in shapes]
    if heads and len(shapes[heads[0]]) >= 1:
        # Strict: build with the file's head size so every tensor must load.
        file_classes = shapes[heads[0]][0]
        try:
            model = timm.create_model(
                model_name, pretrained=True, num_classes=file_classes, drop_rate=drop_rate,
                pretrained_cfg_overlay=dict(file=str(path), num_classes=file_classes),
            )
        except (RuntimeError, KeyError, ValueError) as exc:
            raise _mismatch(model_name, path, exc) from None
        if keep_head:
            if num_outputs != file_classes:
                raise WeightsMismatchError(
                    f"keep_head=True needs num_outputs={file_classes} (the file's classifier), got"
                    f" {num_outputs}."
                )
            _apply_recorded_preprocessing(model, path)
            return model
        model.reset_classifier(num_outputs)
        _apply_recorded_preprocessing(model, path)
        return model
    # A headless file: timm drops the head and loads non-strictly, so check the backbone ourselves.
    try:
        model = timm.create_model(
            model_name, pretrained=True, num_classes=num_outputs, drop_rate=drop_rate,
            pretrained_cfg_overlay=dict(file=str(path), num_classes=num_outputs + 1),
        )
    except (RuntimeError, KeyError, ValueError) as exc:
        raise _mismatch(model_name, path, exc) from None
    head = {id(p) for p in head_parameters(model)}
    missing = [k for k, p in model.named_parameters() if id(p) not in head and k not in shapes]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5])
        raise _mismatch(model_name, path, RuntimeError(
            f"{len(missing)} backbone tensors are not in the file ({shown})."))
    _apply_recorded_preprocessing(model, path)
    return model


def feature_dim(model: "torch.nn.Module") -> int:
    """Size of the features the classifier sees (``model.forward_head(x, pre_logits=True)``):
    ``model.head_hidden_size`` where a model has a pre-logits layer (MobileNetV3, some ConvNeXt),
    else ``model.num_features``."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def _head_modules(model) -> list:
    head = model.get_classifier()
    return list(head) if isinstance(head, (tuple, list)) else [head]


def head_parameters(model: "torch.nn.Module") -> list["torch.nn.Parameter"]:
    """Parameters of ``model.get_classifier()`` (both heads for distilled models)."""
    seen, out = set(), []
    for module in _head_modules(model):
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def backbone_parameters(model: "torch.nn.Module") -> list["torch.nn.Parameter"]:
    """Every parameter that is not in :func:`head_parameters`."""
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


def _batchnorms(module) -> Iterator:
    from torch.nn.modules.batchnorm import _BatchNorm

    return (m for m in module.modules() if isinstance(m, _BatchNorm))


def _force_eval(module, args):  # forward pre-hook: survives later model.train() calls
    module.training = False


def freeze_batchnorm(module: "torch.nn.Module", *, freeze_affine: bool = True) -> int:
    """Put every BatchNorm layer under ``module`` in eval mode, for good: running statistics are
    used and never updated, even after ``model.train()`` (a forward pre-hook re-applies eval mode).
    ``freeze_affine`` also stops gradients to the BN weight and bias. Returns the number of layers.

    Lightning's ``BaseFinetuning.freeze_module`` instead sets ``track_running_stats=False``, which
    stops the statistics from updating but normalises with *batch* statistics in training mode;
    with the small batches of CPU fine-tuning the frozen running statistics are the safer choice.
    """
    n = 0
    for bn in _batchnorms(module):
        bn.eval()
        if getattr(bn, _HOOK_ATTR, None) is None:
            setattr(bn, _HOOK_ATTR, bn.register_forward_pre_hook(_force_eval))
        if freeze_affine:
            for p in bn.parameters(recurse=False):
                p.requires_grad_(False)
        n += 1
    return n


def unfreeze_batchnorm(module: "torch.nn.Module") -> int:
    """Undo :func:`freeze_batchnorm`: BN layers follow ``module.training`` again and train."""
    n = 0
    for bn in _batchnorms(module):
        handle = getattr(bn, _HOOK_ATTR, None)
        if handle is not None:
            handle.remove()
            setattr(bn, _HOOK_ATTR, None)
        bn.train(module.training)
        for p in bn.parameters(recurse=False):
            p.requires_grad_(True)
        n += 1
    return n


def set_trainable(model: "torch.nn.Module", head_only: bool) -> "torch.nn.Module":
    """``head_only=True``: only the classifier trains; every backbone parameter is frozen and
    BatchNorm layers are kept in eval mode. ``head_only=False``: everything trains (undoes it)."""
    if head_only:
        for p in backbone_parameters(model):
            p.requires_grad_(False)
        for p in head_parameters(model):
            p.requires_grad_(True)
        freeze_batchnorm(model)
    else:
        unfreeze_batchnorm(model)
        for p in model.parameters():
            p.requires_grad_(True)
    return model
