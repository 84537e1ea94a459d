"""Validated configuration shared by the CLI and the Python API.

One ``FitConfig`` describes a run completely; ``config.yaml`` in a run folder is its dump. The CLI,
``headstart.fit(**kwargs)``, YAML files and ``section.key=value`` overrides all go through
:func:`build_config`, so every path gets the same validation and the same error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import annotated_types as at
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headstart._validation import did_you_mean
from headstart.errors import ConfigError

__all__ = [
    "DataConfig",
    "AugmentConfig",
    "ModelConfig",
    "TrainConfig",
    "FitConfig",
    "FLAT_KEYS",
    "build_config",
    "load_yaml",
    "parse_override",
    "parse_scalar",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class DataConfig(_Section):
    """Where the images are and how they are split, checked and cached."""

    path: Path | None = None
    """A folder of class subfolders, a folder with train/ val/ [test/] splits, or a CSV of path,label."""
    csv_root: Path | None = None
    """Folder that relative paths in a CSV are resolved against (default: the CSV's folder)."""
    val_fraction: float = Field(0.15, gt=0, lt=1)
    """Fraction of images held out for validation when the dataset has no val split."""
    test_fraction: float = Field(0.15, ge=0, lt=1)
    """Fraction held out for testing when the dataset has no test split (0 disables)."""
    strict: bool = False
    """Make unreadable or truncated images fatal instead of skipping and listing them."""
    min_image_size: int = Field(16, ge=1)
    """Images whose shorter side is below this many pixels are reported as too small."""
    cache: Literal["memory", "disk", "none"] = "memory"
    """Where decoded, resized images are kept so later epochs skip JPEG decoding."""
    cache_dir: Path | None = None
    """Folder for ``cache: disk`` (default: ``<run>/cache``)."""
    num_workers: int | None = Field(None, ge=0)
    """DataLoader worker processes (default: 0 on CPU, min(8, cores) on CUDA)."""


class AugmentConfig(_Section):
    """Augmentation: a preset, and every knob of it explicit."""

    preset: Literal["auto", "none", "light", "medium", "strong"] = "auto"
    """none; light = random resized crop + flips; medium = light + rotation, shear, zoom, shift,
    brightness (Keras ImageDataGenerator's knobs); strong = light + TrivialAugmentWide/RandAugment,
    random erasing, mixup/cutmix. auto picks from the dataset size."""
    scale_min: float = Field(0.35, gt=0, le=1)
    """Smallest area fraction kept by the random resized crop."""
    hflip: float = Field(0.5, ge=0, le=1)
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

    name: str = "auto"
    """Any timm model name, or ``auto`` for a default chosen from the data size and device."""
    weights: Path | None = None
    """An explicit weights file (.safetensors/.pth/.pt); beats every other source."""
    pretrained: bool = True
    """False trains from random initialisation (a baseline, rarely what you want)."""
    allow_download: bool = False
    """Allow downloading weights from the model hubs when none are found offline."""
    image_size: int | None = Field(None, ge=16, le=2048)
    """Input size in pixels; default: the model's pretrained_cfg."""
    drop_rate: float = Field(0.0, ge=0, lt=1)
    """Dropout before the classifier."""


class TrainConfig(_Section):
    """The fine-tuning recipe."""

    strategy: Literal["auto", "linear-probe", "full", "lp-ft"] = "auto"
    """linear-probe trains the head on cached backbone features; full trains everything; lp-ft does
    a linear probe first, then fine-tunes everything at a lower LR (Kumar et al. 2022)."""
    epochs: int = Field(10, ge=1)
    """Epochs through the backbone (full, and lp-ft's fine-tuning stage)."""
    probe_epochs: int = Field(50, ge=1)
    """Epochs over cached features (linear-probe, and lp-ft's probing stage)."""
    batch_size: int = Field(32, ge=1)
    lr: float | None = Field(None, gt=0)
    """Peak learning rate of backbone fine-tuning; default 1e-4 x batch_size/32 (AdamW)."""
    probe_lr: float = Field(1e-3, gt=0)
    """Learning rate of the head on cached features."""
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum."""
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    """Final LR of the cosine schedule, as a fraction of the peak."""
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    class_weights: Literal["none", "balanced"] = "none"
    layer_decay: float | None = Field(None, gt=0, le=1)
    """Layer-wise LR decay (timm group_matcher): each block gets this factor times the next one's."""
    freeze_bn: bool = False
    """Keep BatchNorm statistics frozen while fine-tuning (helps with tiny batches)."""
    patience: int | None = Field(5, ge=1)
    """Early stopping: epochs without improvement of ``monitor``; null disables."""
    monitor: Literal["val_loss", "val_accuracy", "val_balanced_accuracy", "val_macro_f1"] = "val_loss"
    grad_clip: float | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    amp: bool = True
    """Mixed precision on CUDA (ignored on CPU)."""
    channels_last: bool = True
    """channels_last memory format on CUDA (ignored on CPU)."""
    top_k: int = Field(5, ge=1)
    """k of the top-k accuracy reported."""


class FitConfig(_Section):
    """Everything a ``headstart fit`` run needs; ``config.yaml`` in a run folder is its dump."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    out: Path | None = None
    """The run folder (default: runs/<dataset name>)."""
    resume: bool = False
    """Continue an interrupted run in ``out`` from its last checkpoint."""

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Flat names used by the CLI flags and by ``headstart.fit(**kwargs)``, mapped to dotted paths.
FLAT_KEYS: dict[str, str] = {
    "data": "data.path",
    "csv_root": "data.csv_root",
    "val_fraction": "data.val_fraction",
    "test_fraction": "data.test_fraction",
    "strict": "data.strict",
    "min_image_size": "data.min_image_size",
    "cache": "data.cache",
    "num_workers": "data.num_workers",
    "model": "model.name",
    "weights": "model.weights",
    "pretrained": "model.pretrained",
    "allow_download": "model.allow_download",
    "image_size": "model.image_size",
    "augment": "augment.preset",
    "strategy": "train.strategy",
    "epochs": "train.epochs",
    "probe_epochs": "train.probe_epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "probe_lr": "train.probe_lr",
    "optimizer": "train.optimizer",
    "weight_decay": "train.weight_decay",
    "label_smoothing": "train.label_smoothing",
    "class_weights": "train.class_weights",
    "layer_decay": "train.layer_decay",
    "patience": "train.patience",
    "monitor": "train.monitor",
    "seed": "train.seed",
    "device": "train.device",
    "out": "out",
    "resume": "resume",
}


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


def _field_info(loc: Sequence[Any]):
    model: type[BaseModel] = FitConfig
    info = None
    for part in loc:
        if not isinstance(part, str) or model is None or part not in model.model_fields:
            break
        info = model.model_fields[part]
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return info


def _describe(info) -> str:
    """'a float in (0, inf)' from a pydantic field's annotation and constraints."""
    ann = str(info.annotation)
    kind = "an int" if "int" in ann and "float" not in ann else "a float"
    low = high = None
    left, right = "(", ")"
    for meta in info.metadata:
        if isinstance(meta, at.Gt):
            low, left = meta.gt, "("
        elif isinstance(meta, at.Ge):
            low, left = meta.ge, "["
        elif isinstance(meta, at.Lt):
            high, right = meta.lt, ")"
        elif isinstance(meta, at.Le):
            high, right = meta.le, "]"
    text = f"{kind} in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    if "None" in ann:
        text += " or null"
    return text


def _format_error(err: Mapping[str, Any]) -> str:
    loc = [p for p in err["loc"] if isinstance(p, str)]
    name = ".".join(loc)
    got = err.get("input")
    etype = err["type"]
    info = _field_info(loc)
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        listed = "{" + ", ".join(repr(o) for o in options if o) + "}"
        hint = did_you_mean(str(got), options) if isinstance(got, str) else ""
        return f"The {name!r} parameter must be one of {listed}. Got {got!r}.{hint}"
    if info is not None and etype.startswith(("greater", "less", "float", "int")):
        return f"The {name!r} parameter must be {_describe(info)}. Got {got!r}."
    if etype.startswith("bool"):
        return f"The {name!r} parameter must be true or false. Got {got!r}."
    if etype.startswith("path") or etype.startswith("string"):
        return f"The {name!r} parameter must be a path or string. Got {got!r}."
    return f"The {name!r} parameter is invalid ({err['msg']}). Got {got!r}."


def _validate(tree: Mapping[str, Any]) -> FitConfig:
    _check_keys(tree, FitConfig)
    try:
        return FitConfig.model_validate(dict(tree))
    except ValidationError as exc:
        messages = [_format_error(e) for e in exc.errors()]
        raise ConfigError("\n".join(dict.fromkeys(messages))) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=3e-4'`` -> ``('train.lr', 0.0003)``; values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(
            f"An override must look like 'section.key=value' (for example 'train.lr=3e-4'). Got {text!r}."
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"An override needs a key before '='. Got {text!r}.")
    return key, parse_scalar(raw)


def parse_scalar(raw: str) -> Any:
    """A command-line or override value as YAML reads it: '3e-4' -> 0.0003, 'true' -> True,
    'null' -> None, anything else stays text."""
    if not raw.strip():
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # PyYAML reads '3e-4' (no dot) as a string; numbers are what users mean.
    if isinstance(value, str) and _looks_numeric(value):
        value = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
    return value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
