"""`headstart tune`: budgeted hyperparameter search over `headstart fit` with Optuna."""

from __future__ import annotations

import argparse

from headstart.commands.fit import split_inputs
from headstart.config import parse_scalar
from headstart.config_flags import CONFIG_FLAGS, add_config_flags, flat_from_args

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train", "tune")

# the config flags of `headstart fit` fix the base config of every trial (tune has its own --out, the study
# folder, and --resume RUN_DIR)
BASE_FLAGS = {flag: spec for flag, spec in CONFIG_FLAGS.items() if flag not in ("--out", "--resume")}


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tune",
        help="search hyperparameters within a trial or time budget (Optuna)",
        description="Search learning rate, batch size, weight decay, epochs, strategy, augmentation and more for "
        "DATA within a budget, pruning bad trials early (for a detection dataset: LR, backbone LR ratio, epochs, "
        "input size, augmentation, strategy and detector, on val mAP). The default config is always the first trial. Flags of "
        "`headstart fit` fix values for every trial; KEY=VALUE arguments override config entries.",
    )
    p.add_argument("inputs", nargs="*", metavar="DATA | KEY=VALUE", help="the dataset, then section.key=value overrides")
    p.add_argument("--config", help="a YAML config fixing the base of every trial")
    p.add_argument("--space", help="a YAML search space (default: ranges chosen from the dataset)")
    p.add_argument("--trials", help="finished trials in the whole study (default 20 without --timeout)")
    p.add_argument("--timeout", help="deadline of the study, e.g. 90s, 20m, 1h: no trial starts after it and a running "
                   "trial stops at the end of its epoch (kept with its best value so far); the final training of the "
                   "best config comes after it")
    p.add_argument("--sampler", default="tpe", help="tpe (default), random, grid or cmaes")
    p.add_argument("--pruner", default="median", help="median (default), halving, hyperband or none")
    p.add_argument("--metric", default=None,
                   help="the objective: classify val_accuracy (default), val_balanced_accuracy, val_macro_f1 or "
                   "val_loss; detect val_map (default), val_map50 or val_map75")
    p.add_argument("--storage", help="SQLAlchemy URL of a shared study (default: SQLite file in the study folder)")
    p.add_argument("--study", help="study name (default: the study folder's name)")
    p.add_argument("--workers", default="1", help="local worker processes sharing the study (default 1)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the interrupted study in RUN_DIR")
    p.add_argument("--out", help="study folder (default runs/tune-<dataset name>)")
    p.add_argument("--grid-points", default="3", help="values per numeric range for --sampler grid (default 3)")
    p.add_argument("--no-final", dest="final", action="store_false",
                   help="do not keep a run folder of the best config (its trial's folder, or a full training when "
                   "that trial was stopped at the timeout)")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    add_config_flags(p, BASE_FLAGS, title="config of every trial",
                     description="The config flags of `headstart fit`: they fix these values for every trial.")
    return p


# arguments a resumed study takes from its tune.json instead, with their argparse defaults
RESUME_IGNORES = {"config": None, "space": None, "sampler": "tpe", "pruner": "median", "metric": None,
                  "storage": None, "study": None, "out": None, "grid_points": "3"}


def check_resume(args: argparse.Namespace, data: str | None, overrides: list[str], flat: dict) -> None:
    """``--resume RUN_DIR`` continues a study with its saved settings: name the arguments it would ignore."""
    from headstart.errors import ConfigError

    ignored = [] if data is None else [f"the dataset {data!r}"]
    ignored += [f"--{k.replace('_', '-')} {getattr(args, k)}" for k, default in RESUME_IGNORES.items()
                if getattr(args, k) != default]
    ignored += [flag if isinstance(flat.get(spec.flat), bool) else f"{flag} {flat[spec.flat]}"
                for flag, spec in BASE_FLAGS.items() if spec.flat in flat]
    if ignored or overrides:
        raise ConfigError(
            f"--resume continues the study in {args.resume!r} with its saved settings (tune.json), so these arguments"
            f" would be ignored: {', '.join(ignored + overrides)}. Drop them (--trials, --timeout, --workers,"
            " --no-final and --quiet apply), or start a new study with a different --out."
        )


def run(args: argparse.Namespace) -> int:
    from headstart.errors import ConfigError
    from headstart.tuning.study import tune

    data, overrides = split_inputs(args.inputs)
    if data is None and args.resume is None:
        raise ConfigError("headstart tune needs a dataset (a folder of images or a CSV), or --resume RUN_DIR.")
    flat = flat_from_args(args, BASE_FLAGS)
    if args.resume is not None:
        check_resume(args, data, overrides, flat)
    result = tune(
        data,
        config=args.config,
        overrides=overrides,
        space=args.space,
        trials=None if args.trials is None else parse_scalar(args.trials),
        timeout=args.timeout,
        sampler=args.sampler,
        pruner=args.pruner,
        metric=args.metric,
        storage=args.storage,
        study=args.study,
        workers=parse_scalar(args.workers),
        resume=args.resume,
        out=args.out,
        final=args.final,
        grid_points=parse_scalar(args.grid_points),
        verbose=not args.quiet,
        **flat,
    )
    print(result.run_dir)
    return 0
