"""`headstart rank`: rank pretrained models for a dataset before fine-tuning."""

from __future__ import annotations

import argparse

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rank",
        help="choose the pretrained model that will transfer best, before fine-tuning",
        description="Score pretrained (model, input size) candidates on DATA with transferability estimators"
        " (LogME, H-score, NLEEP, linear-probe and k-NN accuracy) computed on cached features of a sample of"
        " the training images, and write rank.json, rank.csv and rank.png. On a detection dataset (COCO, YOLO,"
        " VOC) the backbones' pyramid features are pooled inside the training boxes (plus background) and a"
        " stride fit is added. `headstart fit DATA --model auto` reuses the ranking.",
    )
    p.add_argument("data", metavar="DATA", help="a folder of class subfolders, a folder with train/ val/ [test/], a CSV, or a detection dataset")
    p.add_argument("--candidates", help="comma-separated timm model names (default: the curated list for the device)")
    p.add_argument("--image-sizes", help="comma-separated input sizes to try for each model"
                   " (default: the one fit would choose from the images or, for detection, from the boxes)")
    p.add_argument("--budget", default="10m", help="time budget: 90s, 10m, 1h30m (default 10m)")
    p.add_argument("--max-images", default=None,
                   help="most training images scored per candidate (default: 10 a class, 200 to 1000)")
    p.add_argument("--estimators", help="comma-separated subset of logme,hscore,nleep,linear_probe,knn (default all)")
    p.add_argument("--batch-size", default="32", help="batch size of feature extraction (default 32)")
    p.add_argument("--seed", default="0", help="seed of the split and the sample (default 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--cache-dir", help="feature cache folder (default $HEADSTART_FEATURES_DIR or ~/.cache/headstart/features)")
    p.add_argument("--out", help="output folder (default runs/<dataset name>-rank)")
    p.add_argument("--allow-download", action="store_true", help="allow downloading weights from the model hubs")
    p.add_argument("--quiet", action="store_true", help="print only the table's file locations and errors")


def _int(name: str, value: str) -> int:
    from headstart.config import parse_scalar
    from headstart.errors import ConfigError

    v = parse_scalar(value)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"The '{name}' parameter must be an int. Got {value!r}.")
    return v


def run(args: argparse.Namespace) -> int:
    from headstart.select.rank import DEFAULT_ESTIMATORS, rank

    table = rank(
        args.data,
        candidates=args.candidates,
        image_sizes=args.image_sizes,
        budget=args.budget,
        out=args.out,
        estimators=args.estimators or DEFAULT_ESTIMATORS,
        max_images=None if args.max_images is None else _int("max_images", args.max_images),
        batch_size=_int("batch_size", args.batch_size),
        seed=_int("seed", args.seed),
        device=args.device,
        cache_dir=args.cache_dir,
        allow_download=args.allow_download,
        verbose=not args.quiet,
    )
    if args.quiet:
        print(f"{table.meta['out']}/rank.json")
    return 0 if table.rows else 1
