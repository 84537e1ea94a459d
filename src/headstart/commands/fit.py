"""`headstart fit`: fine-tune a pretrained model on a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from headstart.config import parse_scalar

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train",)

# flag -> flat config key (see headstart.config.FLAT_KEYS); values are parsed as YAML scalars.
FIT_OPTIONS: dict[str, tuple[str, str]] = {
    "--model": ("model", "timm model name, or 'auto' (default)"),
    "--weights": ("weights", "explicit pretrained weights file (.safetensors/.pth)"),
    "--strategy": ("strategy", "auto, linear-probe, full or lp-ft"),
    "--epochs": ("epochs", "fine-tuning epochs through the backbone (default 10)"),
    "--probe-epochs": ("probe_epochs", "epochs of the head on cached features (default 50)"),
    "--batch-size": ("batch_size", "batch size (default 32)"),
    "--lr": ("lr", "peak learning rate of fine-tuning (default: 2e-4, 1e-4 after a probe, x batch/32)"),
    "--probe-lr": ("probe_lr", "learning rate of the linear probe (default 1e-3)"),
    "--optimizer": ("optimizer", "adamw (default), adam or sgd"),
    "--weight-decay": ("weight_decay", "weight decay (default 0.05)"),
    "--label-smoothing": ("label_smoothing", "label smoothing (default 0.1)"),
    "--layer-decay": ("layer_decay", "layer-wise LR decay factor in (0, 1]"),
    "--class-weights": ("class_weights", "none (default) or balanced"),
    "--image-size": ("image_size", "input size in pixels (default: the model's pretrained_cfg)"),
    "--augment": ("augment", "auto, none, light, medium or strong"),
    "--patience": ("patience", "early-stopping patience in epochs (default 5)"),
    "--monitor": ("monitor", "val_loss (default), val_accuracy, val_balanced_accuracy or val_macro_f1"),
    "--val-fraction": ("val_fraction", "validation fraction when auto-splitting (default 0.15)"),
    "--test-fraction": ("test_fraction", "test fraction when auto-splitting (default 0.15)"),
    "--cache": ("cache", "memory (default), disk or none"),
    "--num-workers": ("num_workers", "DataLoader workers (default: 0 on CPU)"),
    "--seed": ("seed", "random seed (default 0)"),
    "--device": ("device", "auto (default), cpu, cuda, cuda:N or mps"),
    "--out": ("out", "run folder (default runs/<dataset name>)"),
}
# `--tune 15m`: tune for that long first (headstart tune, study in <out>/tune), then keep the best
TUNE_HELP = "tune hyperparameters for this long first (e.g. 15m), then train the best config"
FIT_FLAGS: dict[str, tuple[str, str]] = {
    "--strict": ("strict", "make unreadable images fatal instead of skipping them"),
    "--resume": ("resume", "continue the interrupted run in --out"),
    "--allow-download": ("allow_download", "allow downloading weights from the model hubs"),
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="fine-tune a pretrained model on a folder of images",
        description="Fine-tune a pretrained model on DATA (a folder of class subfolders, a folder with "
        "train/ val/ [test/], or a CSV of path,label) and evaluate it. Extra KEY=VALUE arguments override "
        "any config entry, e.g. train.lr=3e-4 augment.rotation=30.",
    )
    p.add_argument("inputs", nargs="*", metavar="DATA | KEY=VALUE", help="the dataset, then section.key=value overrides")
    p.add_argument("--config", help="a YAML config (a run's config.yaml works)")
    for flag, (_, text) in FIT_OPTIONS.items():
        p.add_argument(flag, help=text)
    for flag, (_, text) in FIT_FLAGS.items():
        p.add_argument(flag, action="store_true", default=None, help=text)
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="train from random initialisation (a baseline)")
    p.add_argument("--tune", metavar="DURATION", help=TUNE_HELP)
    p.add_argument("--quiet", action="store_true", help="print only errors")


# values kept as text: a model name, a path
TEXT_KEYS = ("model", "weights", "out")


def split_inputs(inputs: list[str]) -> tuple[str | None, list[str]]:
    """Positional arguments -> (the dataset, the section.key=value overrides)."""
    from headstart.errors import ConfigError

    data, overrides = None, []
    for item in inputs:
        if "=" in item and not Path(item).exists():
            overrides.append(item)
        elif data is None:
            data = item
        else:
            raise ConfigError(f"Only one dataset can be given. Got {data!r} and {item!r}.")
    return data, overrides


def flat_from_args(args: argparse.Namespace, options: dict, flags: dict) -> dict[str, Any]:
    """The flat config keys (see headstart.config.FLAT_KEYS) of the options and flags given."""
    flat: dict[str, Any] = {}
    for flag, (key, _) in options.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            flat[key] = value if key in TEXT_KEYS else parse_scalar(value)
    for flag, (key, _) in flags.items():
        if getattr(args, flag.lstrip("-").replace("-", "_")):
            flat[key] = True
    return flat


def run(args: argparse.Namespace) -> int:
    from headstart.api import fit

    data, overrides = split_inputs(args.inputs)
    flat = flat_from_args(args, FIT_OPTIONS, FIT_FLAGS)
    if args.pretrained is False:
        flat["pretrained"] = False
    if getattr(args, "tune", None) is not None:
        flat["tune"] = args.tune
    result = fit(data, config=args.config, overrides=overrides, verbose=not args.quiet, **flat)
    print(result.run_dir)
    return 0


