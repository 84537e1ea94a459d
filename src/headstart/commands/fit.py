"""`headstart fit`: fine-tune a pretrained model on a folder of images."""

from __future__ import annotations

import argparse
from pathlib import Path

from headstart.config_flags import CONFIG_FLAGS, add_config_flags, check_resume_arguments, flat_from_args

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train",)

# The config flags come from the fields of headstart.config that declare one (see headstart.config_flags).
# The old tables, derived: flag -> (flat key, help) of the flags taking a value, and of the on/off ones.
FIT_OPTIONS = {f: (s.flat, s.help) for f, s in CONFIG_FLAGS.items() if s.action == "store"}
FIT_FLAGS = {f: (s.flat, s.help) for f, s in CONFIG_FLAGS.items() if s.action != "store"}
# values kept as text: a model name, a path
TEXT_KEYS = tuple(s.flat for s in CONFIG_FLAGS.values() if s.text)
# `--tune 15m`: tune for that long first (headstart tune, study in <out>/tune), then keep the best
TUNE_HELP = "tune hyperparameters for this long first (e.g. 15m), then train the best config"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fit",
        help="fine-tune a pretrained model on a folder of images",
        description="Fine-tune a pretrained model on DATA (a folder of class subfolders, a folder with "
        "train/ val/ [test/], or a CSV of path,label) and evaluate it. Extra KEY=VALUE arguments override "
        "any config entry, e.g. train.lr=3e-4 augment.rotation=30. --resume continues the run in --out with "
        "its saved config.yaml: other arguments than --out and --quiet are refused unless they repeat it.",
    )
    p.add_argument("inputs", nargs="*", metavar="DATA | KEY=VALUE", help="the dataset, then section.key=value overrides")
    p.add_argument("--config", help="a YAML config (a run's config.yaml works)")
    p.add_argument("--tune", metavar="DURATION", help=TUNE_HELP)
    p.add_argument("--quiet", action="store_true", help="print only errors")
    add_config_flags(p, CONFIG_FLAGS)
    return p


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


def run(args: argparse.Namespace) -> int:
    data, overrides = split_inputs(args.inputs)
    flat = flat_from_args(args, CONFIG_FLAGS)
    if getattr(args, "tune", None) is not None:
        flat["tune"] = args.tune
    if flat.get("resume") and flat.get("out") is not None:
        # without the run's config.yaml, fit says that the folder cannot be resumed
        saved = Path(flat["out"]) / "config.yaml"
        if saved.is_file():
            check_resume_arguments(flat, overrides, args.config, data=data, saved=saved, cli=True)

    from headstart.api import fit

    result = fit(data, config=args.config, overrides=overrides, verbose=not args.quiet, **flat)
    from headstart.engine.distributed import env_world

    if env_world().is_main:  # under torchrun every rank returns here; the run folder is said once
        print(result.run_dir)
    return 0
