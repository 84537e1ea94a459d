"""What ``headstart tune`` searches for classification: the names, how the special ones are written
into a config (``augment_strength``, ``layer_decay``), headstart's defaults and the default ranges
for a dataset size (:class:`~headstart.tasks.base.TaskSearchSpace`; the tuning layer parses and
samples them)."""

from __future__ import annotations

from typing import Any

from headstart.tasks.base import TaskSearchSpace, set_dotted

__all__ = ["SEARCH_SPACE", "PARAM_KEYS", "ClassificationSearchSpace"]

# searchable name -> dotted config path ('' = written by apply)
PARAM_KEYS: dict[str, str] = {
    "lr": "train.lr",
    "probe_lr": "train.probe_lr",
    "batch_size": "train.batch_size",
    "weight_decay": "train.weight_decay",
    "epochs": "train.epochs",
    "probe_epochs": "train.probe_epochs",
    "strategy": "train.strategy",
    "layer_decay": "train.layer_decay",
    "label_smoothing": "train.label_smoothing",
    "optimizer": "train.optimizer",
    "augment": "augment.preset",
    "augment_strength": "",
    "hflip": "augment.hflip",
    "image_size": "model.image_size",
    "model": "model.name",
    "drop_rate": "model.drop_rate",
}

# augmentation knob -> (value of the default AugmentConfig, upper bound the config accepts)
_AUG_KNOBS: dict[str, tuple[float, float]] = {
    "rotation": (15.0, 180.0), "shear": (10.0, 89.0), "zoom": (0.1, 0.9), "shift": (0.1, 0.9),
    "brightness": (0.2, 0.9), "erasing": (0.25, 1.0), "mixup": (0.2, 4.0), "cutmix": (1.0, 4.0),
}


class ClassificationSearchSpace(TaskSearchSpace):
    task = "classify"
    keys = PARAM_KEYS
    int_names = frozenset({"epochs", "probe_epochs", "batch_size", "image_size"})
    float_paths = frozenset({"train.lr", "train.probe_lr", "train.weight_decay", "train.layer_decay",
                             "train.label_smoothing", "model.drop_rate", "", "augment_strength"})
    choose_model_once = True

    def apply(self, tree: dict[str, Any], name: str, value: Any) -> bool:
        from headstart.config import AugmentConfig
        from headstart.errors import ConfigError

        if name == "augment_strength":
            s = float(value)
            if not s >= 0:
                raise ConfigError(f"The 'augment_strength' parameter must be a float >= 0. Got {value!r}.")
            for knob, (default, cap) in _AUG_KNOBS.items():
                set_dotted(tree, f"augment.{knob}", min(default * s, cap))
            base = AugmentConfig.model_fields["scale_min"].default
            set_dotted(tree, "augment.scale_min", max(0.05, min(1.0, 1 - (1 - base) * s)))
            set_dotted(tree, "augment.magnitude", int(min(30, round(9 * s))))
            return True
        if name == "layer_decay":
            # 1.0 is the same as no layer decay; null keeps config.yaml saying so
            set_dotted(tree, "train.layer_decay", None if float(value) >= 1.0 else float(value))
            return True
        return False

    def load(self, cfg) -> tuple[Any, int]:
        from headstart.data.index import load_dataset

        index = load_dataset(cfg.data, seed=cfg.train.seed)
        return index, len(index.splits["train"])

    def resolve(self, cfg, index, n_train: int, device_type: str):
        from headstart.tasks.classification.choices import resolve_choices

        return resolve_choices(cfg, n_train)

    def default_point(self, resolved) -> dict[str, Any]:
        t = resolved.train
        point = {
            "strategy": t.strategy, "lr": t.lr, "probe_lr": t.probe_lr, "batch_size": t.batch_size,
            "weight_decay": t.weight_decay, "epochs": t.epochs, "probe_epochs": t.probe_epochs,
            "layer_decay": t.layer_decay if t.layer_decay is not None else 1.0, "label_smoothing": t.label_smoothing,
            "optimizer": t.optimizer, "augment_strength": 1.0, "augment": resolved.augment.preset,
            "hflip": resolved.augment.hflip,
            "drop_rate": resolved.model.drop_rate, "model": resolved.model.name,
        }
        if resolved.model.image_size is not None:
            point["image_size"] = resolved.model.image_size
        return point

    def default_spec(self, cfg, resolved, n_train: int) -> dict[str, Any]:
        return default_spec(n_train, base_epochs=resolved.train.epochs)


def default_spec(n_train: int, *, base_epochs: int = 10) -> dict[str, Any]:
    """Ranges that are worth searching for a dataset of ``n_train`` training images.

    Small datasets (< 200 images) search the probe and lp-ft (full fine-tuning mostly overfits
    there) with small batches; medium ones add full fine-tuning; large ones drop the probe."""
    if n_train < 200:
        strategies, batches, augments = ["linear-probe", "lp-ft"], [8, 16, 32], ["none", "light", "medium"]
    elif n_train <= 20_000:
        strategies, batches, augments = ["linear-probe", "lp-ft", "full"], [16, 32, 64], ["light", "medium", "strong"]
    else:
        strategies, batches, augments = ["lp-ft", "full"], [32, 64, 128], ["light", "medium", "strong"]
    return {
        "strategy": {"choices": strategies},
        "lr": {"low": 1e-5, "high": 5e-3, "log": True},
        "probe_lr": {"low": 1e-4, "high": 3e-2, "log": True},
        "batch_size": {"choices": batches},
        "weight_decay": {"low": 1e-4, "high": 0.3, "log": True},
        "epochs": {"low": max(1, base_epochs // 3), "high": max(1, base_epochs)},
        "layer_decay": {"low": 0.6, "high": 1.0},
        "augment": {"choices": augments},
        "augment_strength": {"low": 0.25, "high": 2.0},
        "hflip": {"choices": [0.0, 0.5]},
        "label_smoothing": {"low": 0.0, "high": 0.2},
    }


SEARCH_SPACE = ClassificationSearchSpace()
