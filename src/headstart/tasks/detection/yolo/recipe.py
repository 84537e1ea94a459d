"""headstart's config mapped onto Ultralytics' train arguments, and the ``auto`` values of a YOLO
run; the result is saved under ``yolo:`` in config.yaml, so the file says exactly what ran.

The mapping (left: headstart, right: Ultralytics):

* ``train.epochs`` -> ``epochs``; ``model.image_size`` -> ``imgsz``; ``train.batch_size`` ->
  ``batch``; ``train.seed`` -> ``seed`` (``deterministic=True``); ``train.device`` -> ``device``;
  ``data.num_workers`` -> ``workers``; ``train.patience`` -> ``patience`` (none: 0, off);
  ``train.warmup_epochs`` -> ``warmup_epochs``; ``train.min_lr_ratio`` -> ``lrf`` with
  ``cos_lr=True`` (headstart's warmup + cosine); ``amp=False`` (on a GPU Ultralytics' AMP check
  downloads a model: ``yolo.amp=true`` turns AMP on, and that check then tries the network); ``data.cache`` ->
  ``cache`` (memory: ram, disk, none: off).
* ``train.optimizer`` (adamw, adam, sgd) -> ``optimizer`` (AdamW, Adam, SGD), ``train.lr`` ->
  ``lr0``, ``train.momentum`` -> ``momentum`` for SGD. Weight decay is Ultralytics' 5e-4 unless
  ``train.weight_decay`` is set to another value than the config's default 0.05 (headstart's 0.05 is
  for AdamW on a pretrained backbone). Decided by value, not by whether the key was written: a
  config.yaml, tune's trial configs and a resumed run carry every key; the resolved value is written
  into config.yaml, so a resumed run or a reused config.yaml trains with the same decay
  (``yolo.weight_decay=0.05`` forces 0.05).
* ``augment.preset``: none turns every augmentation off; light = flips, shift and scale jitter
  (``augment.hflip``, ``vflip``, ``shift``, ``zoom``); medium = light + mosaic, colour (HSV)
  jitter and scale 0.5 (Ultralytics' own recipe); strong = medium + mixup 0.1 and copy-paste 0.1.
* strategy: head trains with the backbone frozen (``freeze`` = the backbone's layers of the
  YAML), full trains everything, head-ft is ``detect.head_epochs`` frozen, then everything.
* ``yolo.<arg>``: any other Ultralytics train argument, passed through (it wins over the mapping).
  A run saves everything it passed under ``yolo.resolved`` in config.yaml (ignored as input).

The auto values: batch 16 (Ultralytics' default; it accumulates gradients to a nominal 64),
AdamW at 1e-3 (SGD 1e-2), augmentation ``medium``, strategy ``full`` when training from the YAML
(a random-init backbone has nothing to keep frozen), ``head-ft`` with imported weights; epochs by
the torchvision detectors' first rule (about 2,880 training images seen, 8 to 60 epochs; they now
see more, BENCHMARKS.md "Detection", which was not measured for YOLO).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from headstart.config import FitConfig
from headstart.errors import ConfigError

__all__ = ["resolve_yolo_choices", "train_args", "check_passthrough", "OWNED_ARGS", "AUGMENT_PRESETS"]

# arguments headstart sets itself: passing them under yolo. would break the run folder's contract
# (device: --device, one device; Ultralytics' multi-GPU mode re-launches a script headstart does not drive)
OWNED_ARGS = (
    "data",
    "model",
    "project",
    "name",
    "exist_ok",
    "resume",
    "plots",
    "save",
    "val",
    "verbose",
    "freeze",
    "pretrained",
    "task",
    "mode",
    "device",
)
_OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD"}
_OFF = {
    "mosaic": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "copy_paste": 0.0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "degrees": 0.0,
    "translate": 0.0,
    "scale": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
    "fliplr": 0.0,
    "flipud": 0.0,
    "close_mosaic": 0,
}
RESOLVED = "resolved"  # the key under which a run saves every argument it used (not an input)
AUGMENT_PRESETS = ("none", "light", "medium", "strong")
TARGET_IMAGES, MIN_EPOCHS, MAX_EPOCHS = 2880, 8, 60
ULTRALYTICS_WEIGHT_DECAY = 5e-4  # its default (ultralytics/cfg/default.yaml, 8.4.190)


def resolve_yolo_choices(
    cfg: FitConfig, train_samples, *, device_type: str, has_weights: bool
) -> tuple[FitConfig, list[str]]:
    """``cfg`` with the batch size, LR, epochs, strategy, head epochs and augmentation decided for a
    YOLO detector (the input size is decided as for the other detectors), and the reasons to print."""
    from headstart._validation import check_choice

    reasons: list[str] = []
    d, t = cfg.detect, cfg.train
    batch_size = t.batch_size or 16
    lr = t.lr if t.lr is not None else (1e-2 if t.optimizer == "sgd" else 1e-3)
    strategy = t.strategy
    if strategy == "auto":
        strategy = "head-ft" if has_weights else "full"
        reasons.append(
            f"strategy {strategy}: "
            + (
                "imported weights: the backbone is frozen for the first epochs"
                if has_weights
                else "random init from the model YAML: everything trains"
            )
        )
    strategy = check_choice("train.strategy", strategy, ["head", "full", "head-ft"])
    epochs, head_epochs = t.epochs, d.head_epochs
    if epochs is None:
        n = len(train_samples)
        epochs = int(min(max(math.ceil(TARGET_IMAGES / max(n, 1)), MIN_EPOCHS), MAX_EPOCHS))
        reasons.append(f"{epochs} epochs: about {TARGET_IMAGES} training images seen in all")
    if strategy == "head-ft" and head_epochs is None:
        head_epochs = max(1, round(epochs * 0.2))
    preset = "medium" if cfg.augment.preset == "auto" else cfg.augment.preset
    weight_decay = t.weight_decay
    if weight_decay == type(t).model_fields["weight_decay"].default:  # headstart's, not the user's
        weight_decay = ULTRALYTICS_WEIGHT_DECAY
    update: dict[str, Any] = {
        "detect": d.model_copy(update={"head_epochs": head_epochs}),
        "train": t.model_copy(
            update={
                "batch_size": batch_size,
                "lr": lr,
                "epochs": epochs,
                "strategy": strategy,
                "weight_decay": weight_decay,
            }
        ),
        # hflip auto (null): Ultralytics' own fliplr default
        "augment": cfg.augment.model_copy(update={"preset": preset,
                                                  "hflip": 0.5 if cfg.augment.hflip is None else cfg.augment.hflip}),
    }
    return cfg.model_copy(update=update), reasons


def _augment(cfg: FitConfig) -> dict[str, Any]:
    a = cfg.augment
    if a.preset == "none":
        return dict(_OFF)
    light = {**_OFF, "fliplr": a.hflip, "flipud": a.vflip, "translate": a.shift, "scale": a.zoom}
    if a.preset == "light":
        return light
    medium = {**light, "mosaic": 1.0, "close_mosaic": 10, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "scale": 0.5}
    if a.preset == "medium":
        return medium
    return {**medium, "mixup": 0.1, "copy_paste": 0.1}


def _device(device: str) -> str:
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device  # cpu, mps


def train_args(cfg: FitConfig, *, device: str, data_yaml: str, project: str) -> dict[str, Any]:
    """Ultralytics' train arguments for ``cfg`` (all autos resolved), before the strategy's
    stages and the ``yolo.`` pass-through are applied."""
    t, d = cfg.train, cfg.data
    workers = d.num_workers if d.num_workers is not None else (0 if device in ("cpu", "mps") else 8)
    args: dict[str, Any] = {
        "data": data_yaml,
        "project": project,
        "epochs": t.epochs,
        "imgsz": cfg.model.image_size,
        "batch": t.batch_size,
        "seed": t.seed,
        "deterministic": True,
        "device": _device(device),
        "workers": workers,
        "optimizer": _OPTIMIZERS[t.optimizer],
        "lr0": t.lr,
        "lrf": t.min_lr_ratio,
        "cos_lr": True,
        "warmup_epochs": t.warmup_epochs,
        "patience": t.patience or 0,
        # Ultralytics checks AMP on a GPU by loading (downloading) its yolo26n.pt: off unless yolo.amp=true
        "amp": False,
        "cache": {"memory": "ram", "disk": "disk", "none": False}[d.cache],
        "max_det": cfg.detect.max_det,
        "plots": False,
        "val": True,
        "save": False,
        "exist_ok": True,
        "verbose": False,
        **_augment(cfg),
    }
    if t.optimizer == "sgd":
        args["momentum"] = t.momentum
    args["weight_decay"] = t.weight_decay  # resolved by resolve_yolo_choices
    return args


def check_passthrough(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The ``yolo.`` section (less ``resolved``, which a run writes) checked against Ultralytics' own argument names (close-match
    suggestions), refusing the ones headstart sets itself."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    from headstart._validation import did_you_mean

    extra = {k: v for k, v in extra.items() if k != RESOLVED}
    for key in extra:
        if key in OWNED_ARGS:
            raise ConfigError(
                f"yolo.{key} is set by headstart (the run folder depends on it); remove it."
                f" headstart's own options cover it (see `headstart fit --help`)."
            )
        if key not in DEFAULT_CFG_DICT:
            hint = did_you_mean(str(key), list(DEFAULT_CFG_DICT))
            raise ConfigError(
                f"Unknown Ultralytics argument yolo.{key}.{hint} The yolo. section passes Ultralytics'"
                " train arguments through (https://docs.ultralytics.com/usage/cfg/)."
            )
    return extra
