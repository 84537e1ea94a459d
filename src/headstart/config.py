"""Validated configuration shared by the CLI and the Python API.

One ``FitConfig`` describes a run completely; ``config.yaml`` in a run folder is its dump. The CLI,
``headstart.fit(**kwargs)``, YAML files and ``section.key=value`` overrides all go through
:func:`build_config`, so every path gets the same validation and the same error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from headstart._config_errors import validation_message
from headstart._config_values import parse_override, parse_scalar
from headstart._validation import did_you_mean
from headstart.errors import ConfigError

__all__ = [
    "DataConfig",
    "AugmentConfig",
    "ModelConfig",
    "TrainConfig",
    "DetectConfig",
    "FitConfig",
    "FLAT_KEYS",
    "FLAT_PARAMS",
    "FlatParam",
    "build_config",
    "load_yaml",
    "parse_override",
    "parse_scalar",
]


class _Section(BaseModel):
    # the attribute docstrings become the fields' descriptions: the help text of their CLI flags
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), use_attribute_docstrings=True
    )


def _cli(flag: str | None = None, *, flat: str | None = None, text: bool = False, metavar: str | None = None,
         help: str | None = None) -> dict[str, Any]:
    """``json_schema_extra`` of a field that is a flat parameter of ``headstart.fit(**kwargs)``, named
    ``flat`` (default: the field's name), and with ``flag`` a ``headstart fit`` flag. ``text`` keeps the
    flag's value as text instead of reading it as YAML (names, paths); ``help`` replaces the field's
    docstring as the flag's help. headstart.config_flags builds the CLI from these."""
    meta = {"flag": flag, "flat": flat, "text": text or None, "metavar": metavar, "help": help}
    return {"cli": {k: v for k, v in meta.items() if v is not None}}


class DataConfig(_Section):
    """Where the images are and how they are split, checked and cached."""

    path: Path | None = Field(None, json_schema_extra=_cli(flat="data"))
    """A folder of class subfolders, a folder with train/ val/ [test/] splits, or a CSV of path,label."""
    csv_root: Path | None = Field(None, json_schema_extra=_cli())
    """Folder that relative paths in a CSV are resolved against (default: the CSV's folder)."""
    val_fraction: float = Field(0.15, gt=0, lt=1, json_schema_extra=_cli("--val-fraction"))
    """Fraction of images held out for validation when the dataset has no val split."""
    test_fraction: float = Field(0.15, ge=0, lt=1, json_schema_extra=_cli("--test-fraction"))
    """Fraction held out for testing when the dataset has no test split; 0 disables."""
    strict: bool = Field(False, json_schema_extra=_cli("--strict"))
    """Make unreadable or truncated images fatal instead of skipping and listing them."""
    min_image_size: int = Field(16, ge=1, json_schema_extra=_cli())
    """Images whose shorter side is below this many pixels are reported as too small."""
    cache: Literal["memory", "disk", "none"] = Field("memory", json_schema_extra=_cli("--cache"))
    """Where decoded, resized images are kept so later epochs skip JPEG decoding."""
    cache_dir: Path | None = None
    """Folder for ``cache: disk`` (default: ``<run>/cache``)."""
    num_workers: int | None = Field(None, ge=0, json_schema_extra=_cli("--num-workers"))
    """DataLoader worker processes (default: 0 on CPU, min(8, cores) on CUDA)."""


class AugmentConfig(_Section):
    """Augmentation: a preset, and every knob of it explicit."""

    preset: Literal["auto", "none", "light", "medium", "strong"] = Field(
        "auto", json_schema_extra=_cli("--augment", flat="augment")
    )
    """none; light = random resized crop + flips; medium = light + rotation, shear, zoom, shift,
    brightness (Keras ImageDataGenerator's knobs); strong = light + TrivialAugmentWide/RandAugment,
    random erasing, mixup/cutmix. auto: light for classification (measured best of the three on
    the design datasets of benchmarks/defaults.py); for detection from the data."""
    scale_min: float = Field(0.6, gt=0, le=1)
    """Smallest area fraction kept by the random resized crop (0.35 before issue 15: crops that
    small cut the object of a small image out too often)."""
    hflip: float | None = Field(None, ge=0, le=1)
    """Probability of a horizontal flip. Default (null, auto): 0 for classification, where a
    mirrored symbol can be another class or none (flips cost 2.2 points on the design set of
    letters and gained 0.3-0.4 on the photo sets, within noise); 0.5 for detection."""
    vflip: float = Field(0.0, ge=0, le=1)
    rotation: float = Field(15.0, ge=0, le=180)
    """Degrees (medium)."""
    shear: float = Field(10.0, ge=0, lt=90)
    """Degrees (medium)."""
    zoom: float = Field(0.1, ge=0, lt=1)
    """Scale jitter, as a fraction (medium)."""
    shift: float = Field(0.1, ge=0, lt=1)
    """Translation, as a fraction of the image size (medium)."""
    brightness: float = Field(0.2, ge=0, lt=1)
    """Brightness jitter (medium)."""
    policy: Literal["trivial", "randaugment"] = "trivial"
    """Automatic augmentation policy (strong)."""
    magnitude: int = Field(9, ge=0, le=30)
    """RandAugment magnitude (strong, policy randaugment)."""
    erasing: float = Field(0.25, ge=0, le=1)
    """Random erasing probability (strong)."""
    mixup: float = Field(0.2, ge=0)
    """Mixup alpha; 0 disables (strong)."""
    cutmix: float = Field(1.0, ge=0)
    """CutMix alpha; 0 disables (strong)."""


class ModelConfig(_Section):
    """Which pretrained model, with which weights, at which input size."""

    name: str = Field("auto", json_schema_extra=_cli("--model", flat="model", text=True, metavar="NAME"))
    """Any timm model name, or ``auto`` for a default chosen from the data size and device."""
    weights: Path | None = Field(None, json_schema_extra=_cli("--weights", text=True, metavar="FILE"))
    """An explicit weights file (.safetensors/.pth/.pt); beats every other source (default: found by the
    model's name in the weights store, the local caches and, with allow_download, the hubs)."""
    pretrained: bool = Field(True, json_schema_extra=_cli(
        "--no-pretrained", help="Train from random initialisation (a baseline, rarely what you want)."))
    """Start from pretrained weights; false trains from random initialisation (a baseline)."""
    allow_download: bool = Field(False, json_schema_extra=_cli("--allow-download"))
    """Allow downloading weights from the model hubs when none are found offline."""
    image_size: int | None = Field(None, ge=16, le=2048, json_schema_extra=_cli(
        "--image-size", help="input size in px (classify default: from the images, see the README)"))
    """Input size in pixels. classify default: from the data, 2x the images' median short side, at least
    96 px, rounded up to a multiple of 32, at most the model's pretrained_cfg size
    (headstart.data.input_size); the choice and its reason are printed and saved in config.yaml."""
    drop_rate: float = Field(0.0, ge=0, lt=1)
    """Dropout before the classifier."""


class DetectConfig(_Section):
    """Object detection (task: detect): the detector on the backbone, its anchors and its outputs."""

    detector: str = Field("auto", json_schema_extra=_cli(
        "--detector", text=True, metavar="NAME",
        help="fasterrcnn, fcos, retinanet, or auto (default: from the data size and device); yolov8n-x,"
             " yolo11n-x with headstart[yolo] (Ultralytics, AGPL-3.0)"))
    """The torchvision detector put on the backbone (``model.name``): fasterrcnn, fcos or retinanet;
    auto picks from the data size and the device and says why. Or a YOLO detector from Ultralytics
    (``yolov8n`` ... ``yolo11x``, the ``yolo`` extra; headstart.tasks.detection.yolo)."""
    head_epochs: int | None = Field(None, ge=1)
    """Epochs of the first stage of head-ft, with the backbone frozen (default: from the data)."""
    backbone_lr_ratio: float = Field(0.3, gt=0, le=1)
    """The backbone's LR as a fraction of the neck's and heads' while everything trains."""
    frozen_stride: int = Field(4, ge=0)
    """The backbone's stem and every stage whose output stride is at most this stay frozen while
    everything else trains (4, the default: the stride-2 and stride-4 stages, as torchvision's
    default ``trainable_backbone_layers=3``; 0: the whole backbone trains). torchvision detectors only."""
    anchors: Literal["auto", "default"] = "auto"
    """auto: anchor sizes and aspect ratios from the training boxes; default: torchvision's (COCO's)."""
    fpn_channels: int = Field(128, ge=64, multiple_of=32)
    """Channels of the feature pyramid: a multiple of 32 and at least 64 (FCOS's head normalises
    with GroupNorm in 32 groups, which needs two channels a group on a one-pixel level)."""
    conf: float | None = Field(None, ge=0, le=1)
    """Default score threshold of predict (default: the one that maximised F1 on the evaluated split)."""
    max_det: int = Field(100, ge=1)
    """Most detections per image."""


class TrainConfig(_Section):
    """The fine-tuning recipe."""

    strategy: str = Field("auto", json_schema_extra=_cli(
        "--strategy", metavar="S",
        help="auto (default), or for classify linear-probe, full, lp-ft; for detect head, full, head-ft"))
    """The fine-tuning plan, one of the task's (checked when the run starts). classify: linear-probe
    trains the head on cached backbone features; full trains everything; lp-ft does a linear probe
    first, then fine-tunes everything at a lower LR (Kumar et al. 2022) with BatchNorm frozen as the probe
    saw it (train.freeze_bn auto); auto picks from the dataset size: linear-probe under 200 training
    images, full from 200 on. detect: head trains
    the new neck and heads on a frozen backbone; full trains everything; head-ft (auto) does head,
    then everything with the backbone at a lower LR (detect.backbone_lr_ratio)."""
    epochs: int | None = Field(None, ge=1, json_schema_extra=_cli(
        "--epochs", help="epochs through the backbone (default: 10 for classify; from the data for detect)"))
    """Epochs through the backbone (full, and lp-ft's or head-ft's fine-tuning stage); default: 10 for
    classification, from the number of training images for detection (enough optimiser steps)."""
    probe_epochs: int = Field(50, ge=1, json_schema_extra=_cli("--probe-epochs"))
    """Epochs over cached features (linear-probe, and lp-ft's probing stage)."""
    batch_size: int | None = Field(None, ge=1, json_schema_extra=_cli(
        "--batch-size", help="images per step (default: 32 for classify; for detect 4 on a CPU, 16 on a GPU)"))
    """Images per training step."""
    lr: float | None = Field(None, gt=0, json_schema_extra=_cli("--lr"))
    """Peak learning rate of backbone fine-tuning (default for classify: 2e-3, 1e-4 after lp-ft's probe,
    50x that with sgd, times batch_size/32)."""
    probe_lr: float = Field(1e-3, gt=0, json_schema_extra=_cli("--probe-lr"))
    """Learning rate of the head on cached features."""
    optimizer: Literal["adamw", "adam", "sgd"] = Field("adamw", json_schema_extra=_cli("--optimizer"))
    """Optimizer of every stage."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum."""
    weight_decay: float = Field(0.05, ge=0, json_schema_extra=_cli("--weight-decay"))
    """Weight decay; decoupled for AdamW."""
    warmup_epochs: float = Field(1.0, ge=0)
    ema_decay: float | None = Field(None, ge=0, lt=1)
    """Validate, keep and save an exponential moving average of the weights (timm's ModelEmaV3, one
    per stage through the backbone, its decay warmed up from 0 over the stage's steps and capped at
    this value); 0 turns it off. Default (null, auto): 0.999 for detection (BENCHMARKS.md,
    "Detection"), off for classification."""
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    """Final LR of the cosine schedule, as a fraction of the peak."""
    label_smoothing: float = Field(0.1, ge=0, lt=1, json_schema_extra=_cli("--label-smoothing"))
    """Label smoothing of the cross-entropy loss."""
    class_weights: Literal["none", "balanced"] = Field("none", json_schema_extra=_cli("--class-weights"))
    """balanced weighs the loss of each class by the inverse of its frequency."""
    layer_decay: float | None = Field(None, gt=0, le=1, json_schema_extra=_cli("--layer-decay"))
    """Layer-wise LR decay (timm group_matcher): each block gets this factor times the next one's
    (default: off)."""
    freeze_bn: bool | None = None
    """Keep BatchNorm in eval mode (statistics frozen) while fine-tuning. Default (null, auto): on after
    lp-ft's probe, so fine-tuning starts from the features the probed head was fit on (measured in
    BENCHMARKS.md, "Classification defaults"); off otherwise. Helps with tiny batches too."""
    patience: int | None = Field(5, ge=1, json_schema_extra=_cli("--patience"))
    """Early stopping: epochs without improvement of ``monitor``; null disables."""
    monitor: str = Field("auto", json_schema_extra=_cli(
        "--monitor", text=True, metavar="METRIC",
        help="validation metric of early stopping and the best checkpoint (default: the task's, val_loss for"
             " classify and val_map for detect); classify also has val_accuracy, val_balanced_accuracy,"
             " val_macro_f1; detect val_map50, val_map75"))
    """Validation metric of early stopping and of the best checkpoint: one of the task's validation
    metrics (headstart.tasks), ``auto`` for the task's default; metrics (headstart.tasks), checked when the run starts."""
    grad_clip: float | None = Field(None, gt=0)
    seed: int = Field(0, ge=0, json_schema_extra=_cli("--seed"))
    """Seed of the data split, the initialisation, shuffling and augmentation."""
    device: str = Field("auto", json_schema_extra=_cli("--device"))
    """Where to train: auto, cpu, cuda, cuda:N or mps."""
    devices: int | Literal["auto"] = Field(1, json_schema_extra=_cli(
        "--devices", metavar="N",
        help="processes (one per GPU) that train together with DistributedDataParallel (default 1; auto: every"
             " GPU); config.yaml records the world size"))
    """Worker processes that train together (DistributedDataParallel, one per GPU; on a CPU, N gloo
    processes): headstart starts them through torch's elastic launcher. auto: one per visible GPU
    (1 without). Under torchrun the launcher decides, and config.yaml records its world size here.
    batch_size stays the global batch: each device takes batch_size / devices."""
    @field_validator("devices")
    @classmethod
    def _devices_at_least_one(cls, value):
        if value != "auto" and value < 1:
            raise ValueError(f"must be an int in [1, inf) or 'auto'. Got {value!r}")
        return value

    sync_bn: bool = Field(False, json_schema_extra=_cli("--sync-bn"))
    """With several devices, BatchNorm statistics computed over the global batch (SyncBatchNorm, CUDA
    only) instead of each device's share."""
    amp: bool = True
    """Mixed precision on CUDA (ignored on CPU)."""
    channels_last: bool = True
    """channels_last memory format: on CUDA, and on the CPU for models without LayerNorm (faster
    there for convolutional networks; no gain for ConvNeXt and ViTs; BENCHMARKS.md)."""
    top_k: int = Field(5, ge=1)
    """k of the top-k accuracy reported."""


class FitConfig(_Section):
    """Everything a ``headstart fit`` run needs; ``config.yaml`` in a run folder is its dump."""

    task: str = Field("auto", json_schema_extra=_cli(
        "--task", text=True, metavar="TASK",
        help="classify or detect (default auto: detect for a COCO, YOLO or VOC layout, else classify)"))
    """The task (headstart.tasks): its data layout, model, losses and metrics. auto: detect when the
    data is a COCO, YOLO or Pascal VOC detection dataset, classify otherwise."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    yolo: dict[str, Any] = Field(default_factory=dict)
    """Ultralytics train arguments passed through to a YOLO detector (``yolo.mosaic=0.5``); a YOLO
    run saves here every argument it resolved (headstart.tasks.detection.yolo.recipe)."""
    out: Path | None = Field(None, json_schema_extra=_cli("--out", text=True, metavar="DIR"))
    """The run folder (default: runs/<dataset name>)."""
    resume: bool = Field(False, json_schema_extra=_cli("--resume"))
    """Continue the interrupted run in the out folder from its last checkpoint, with its saved config.yaml."""

    def to_dict(self) -> dict[str, Any]:
        # a task's own section is written only for that task: a classification config.yaml has no 'detect';
        # 'yolo' only when it holds something (a YOLO run's resolved arguments)
        exclude = ({"detect"} if self.task != "detect" else set()) | (set() if self.yolo else {"yolo"})
        return self.model_dump(mode="json", exclude=exclude or None)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class FlatParam(NamedTuple):
    """A flat parameter of ``headstart.fit(**kwargs)``, declared by its config field's ``_cli`` metadata."""

    name: str  # 'lr'
    dotted: str  # 'train.lr'
    flag: str | None  # '--lr'; None: no `headstart fit` flag (set it with section.key=value)
    text: bool  # the flag's value stays text (a name, a path) instead of being read as YAML
    metavar: str | None
    help: str | None  # replaces the field's description as the flag's help
    field: FieldInfo


def _flat_params(model: type[BaseModel] = FitConfig, prefix: str = "") -> dict[str, FlatParam]:
    params: dict[str, FlatParam] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found = _flat_params(ann, f"{prefix}{name}.")
        elif isinstance(info.json_schema_extra, dict) and "cli" in info.json_schema_extra:
            cli: dict[str, Any] = info.json_schema_extra["cli"]  # type: ignore[assignment]
            flat = cli.get("flat", name)
            found = {flat: FlatParam(flat, f"{prefix}{name}", cli.get("flag"), bool(cli.get("text")),
                                     cli.get("metavar"), cli.get("help"), info)}
        else:
            continue
        if params.keys() & found.keys():
            raise TypeError(f"Flat parameter names declared twice in {model.__name__}: {params.keys() & found.keys()}")
        params.update(found)
    return params


# The flat parameters of ``headstart.fit(**kwargs)`` and the `headstart fit` flags, in field order; built
# from the fields' ``_cli`` declarations above (headstart.config_flags turns them into argparse flags).
FLAT_PARAMS: dict[str, FlatParam] = _flat_params()
# flat name -> dotted path
FLAT_KEYS: dict[str, str] = {p.name: p.dotted for p in FLAT_PARAMS.values()}


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"Cannot set {dotted!r}: {part!r} is not a section.")
        node = child
    node[parts[-1]] = value


def _check_keys(tree: Mapping[str, Any], model: type[BaseModel], prefix: str = "") -> None:
    """Reject unknown keys with close-match suggestions before pydantic sees them."""
    fields = model.model_fields
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            valid = [f"{prefix}{f}" for f in fields]
            hint = did_you_mean(dotted, valid) or did_you_mean(str(key), list(fields))
            raise ConfigError(
                f"Unknown parameter {dotted!r}.{hint} Valid parameters here: {', '.join(valid)}."
            )
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"The {dotted!r} parameter must be a mapping of its settings. Got {value!r}."
                )
            _check_keys(value, annotation, prefix=f"{dotted}.")


def _validate(tree: Mapping[str, Any]) -> FitConfig:
    _check_keys(tree, FitConfig)
    try:
        return FitConfig.model_validate(dict(tree))
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, FitConfig)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The config file {str(path)!r} does not exist. Pass an existing YAML file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"The config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"The config file {str(path)!r} must hold a mapping of sections (data, model, train, ...)."
            f" Got a {type(data).__name__}."
        )
    return data


def build_config(
    data: str | Path | None = None,
    *,
    config: str | Path | Mapping[str, Any] | FitConfig | None = None,
    overrides: Sequence[str] = (),
    **flat: Any,
) -> FitConfig:
    """Merge, in increasing priority: defaults < ``config`` (file or mapping) < ``overrides``
    (``'section.key=value'``) < flat keyword arguments (``lr=1e-4``) < ``data``."""
    if isinstance(config, FitConfig):
        tree: dict[str, Any] = config.to_dict()
    elif isinstance(config, Mapping):
        tree = dict(config)
    elif config is not None:
        tree = load_yaml(config)
    else:
        tree = {}
    tree = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in tree.items()}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    for key, value in flat.items():
        if key not in FLAT_KEYS:
            hint = did_you_mean(key, list(FLAT_KEYS))
            raise ConfigError(
                f"Unknown parameter {key!r}.{hint} Valid parameters: {', '.join(sorted(FLAT_KEYS))}."
            )
        if value is not None:
            _set_dotted(tree, FLAT_KEYS[key], value)
    if data is not None:
        _set_dotted(tree, "data.path", str(data))
    return _validate(tree)

