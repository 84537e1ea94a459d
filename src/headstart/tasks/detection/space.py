"""What ``headstart tune`` searches for detection (:class:`~headstart.tasks.base.TaskSearchSpace`;
the tuning layer parses and samples the ranges).

The default space searches what the config leaves to headstart: the LR (log, around the one
:mod:`~headstart.tasks.detection.choices` picks for the batch size), the backbone's LR ratio,
the epochs, the input size (multiples of 32 around the chosen one), the augmentation preset, the
strategy and the detector. A value the user set (``--detector fcos``, ``--image-size 320``,
``detect.backbone_lr_ratio=0.5``, ...) is kept for every trial instead of searched; the head
epochs of ``head-ft`` stay at headstart's choice so that trial 0 is exactly the default config.

A YOLO detector (``--detector yolo11n``, or the one ``detector: auto`` chooses when its imported
weights are in the store) is searched with Ultralytics' recipe around headstart's YOLO defaults
(:mod:`~headstart.tasks.detection.yolo.recipe`): the LR, epochs, input size and augmentation; the
strategy only when it starts from imported weights (from its YAML everything trains). The names that
only torchvision's detectors read (``backbone_lr_ratio``, ``fpn_channels``, ``anchors``) are left out
when the detector is a fixed YOLO one. A space may list YOLO detectors beside torchvision's
(``detector: [fcos, yolo11n]``) when Ultralytics is installed.
"""

from __future__ import annotations

from typing import Any

from headstart.tasks.base import TaskSearchSpace

__all__ = ["SEARCH_SPACE", "PARAM_KEYS", "DetectionSearchSpace", "DETECTORS"]

DETECTORS = ("fasterrcnn", "fcos", "retinanet")  # tasks.detection.models.DETECTORS, without importing torch

# searchable name -> dotted config path
PARAM_KEYS: dict[str, str] = {
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "weight_decay": "train.weight_decay",
    "epochs": "train.epochs",
    "head_epochs": "detect.head_epochs",
    "strategy": "train.strategy",
    "augment": "augment.preset",
    "image_size": "model.image_size",
    "model": "model.name",
    "detector": "detect.detector",
    "backbone_lr_ratio": "detect.backbone_lr_ratio",
    "fpn_channels": "detect.fpn_channels",
    "anchors": "detect.anchors",
}

SMALL = 200  # training images below which the frozen-backbone `head` strategy is searched too


class DetectionSearchSpace(TaskSearchSpace):
    task = "detect"
    keys = PARAM_KEYS
    int_names = frozenset({"epochs", "head_epochs", "batch_size", "image_size", "fpn_channels"})
    float_paths = frozenset({"train.lr", "train.weight_decay", "detect.backbone_lr_ratio"})
    choose_model_once = False  # detection fit resolves `model: auto` itself, without ranking

    def check(self, name: str, value: Any) -> None:
        from headstart._validation import check_choice

        if PARAM_KEYS.get(name, name) == "detect.detector":
            import importlib.util

            from headstart.tasks.detection.yolo import YOLO_DETECTORS, is_yolo

            check_choice("detect.detector", value, (*DETECTORS, *YOLO_DETECTORS))
            if is_yolo(value) and importlib.util.find_spec("ultralytics") is None:
                from headstart.errors import ConfigError

                raise ConfigError(
                    f"The search space lists the YOLO detector {value!r}, which needs Ultralytics: pip install"
                    " 'headstart[yolo]' (AGPL-3.0), or leave it out of the space."
                )

    def load(self, cfg) -> tuple[Any, int]:
        from headstart.data.detection import load_detection_dataset

        d = cfg.data
        index = load_detection_dataset(d.path, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                                       strict=d.strict, seed=cfg.train.seed)
        return index, len(index.splits["train"])

    def resolve(self, cfg, index, n_train: int, device_type: str):
        from headstart.tasks.detection.choices import resolve_choices

        return resolve_choices(cfg, index.splits["train"], device_type=device_type)[0]

    def default_point(self, resolved) -> dict[str, Any]:
        t, d = resolved.train, resolved.detect
        point = {
            "lr": t.lr, "batch_size": t.batch_size, "weight_decay": t.weight_decay, "epochs": t.epochs,
            "head_epochs": d.head_epochs, "strategy": t.strategy, "augment": resolved.augment.preset,
            "image_size": resolved.model.image_size, "detector": d.detector,
            "backbone_lr_ratio": d.backbone_lr_ratio, "fpn_channels": d.fpn_channels, "anchors": d.anchors,
        }
        if resolved.model.name != "auto":
            point["model"] = resolved.model.name
        return point

    def default_spec(self, cfg, resolved, n_train: int) -> dict[str, Any]:
        """The searched ranges for ``cfg`` (the user's config, before resolving) around
        ``resolved`` (headstart's choices); names the user set are left out."""
        from headstart.tasks.detection.yolo import is_yolo

        t, d, r = cfg.train, cfg.detect, resolved
        fixed_yolo = is_yolo(d.detector)  # every trial trains this YOLO detector
        spec: dict[str, Any] = {}
        if t.lr is None:
            lr = r.train.lr
            spec["lr"] = {"low": float(f"{lr / 5:.3g}"), "high": float(f"{lr * 4:.3g}"), "log": True}
        if "backbone_lr_ratio" not in d.model_fields_set and not fixed_yolo:
            spec["backbone_lr_ratio"] = {"low": 0.05, "high": 1.0, "log": True}
        if t.epochs is None:
            e = r.train.epochs
            spec["epochs"] = {"low": max(1, e // 2), "high": max(2, e + e // 2)}
        if d.head_epochs is None and r.detect.head_epochs is not None:
            spec["head_epochs"] = r.detect.head_epochs  # fixed: trial 0 is exactly the default config
        if cfg.model.image_size is None:
            size = r.model.image_size
            spec["image_size"] = {"choices": sorted({max(64, 32 * round(size * f / 32)) for f in (0.75, 1.0, 1.25)})}
        if cfg.augment.preset == "auto":
            spec["augment"] = {"choices": ["none", "light", "medium"] if n_train < SMALL else ["light", "medium", "strong"]}
        from_yaml = is_yolo(r.detect.detector) and r.train.strategy == "full"  # no imported weights: all trains
        if t.strategy == "auto" and not from_yaml:
            spec["strategy"] = {"choices": ["head", "head-ft", "full"] if n_train < SMALL else ["head-ft", "full"]}
        if d.detector == "auto":  # torchvision's, and the YOLO detector auto chose (its weights imported)
            chosen = [r.detect.detector] if is_yolo(r.detect.detector) else []
            spec["detector"] = {"choices": chosen + list(DETECTORS)}
        return spec


SEARCH_SPACE = DetectionSearchSpace()
