"""`headstart doctor`: why transfer learning underperforms on this data / this run, and what to change."""

from __future__ import annotations

import argparse

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "doctor", help="find data, config and training problems, with evidence and fixes",
        description="Examine a dataset (folder or CSV: data checks; a COCO, YOLO or VOC detection dataset: annotation,"
        " box-size and duplicate checks) or a run folder (data + config + training-curve checks; for a detection run"
        " also the detector's view of the labels). Findings are ordered by severity.")
    p.add_argument("target", help="a folder of images / CSV of path,label, a detection dataset, or a run folder")
    p.add_argument("--level", default="full", help="full (default; pretrained-feature checks too), images (no features),"
                   " quick (no image is read)")
    p.add_argument("--model", default="auto", help="backbone for feature checks (auto: mobilenetv2_100 if in the store,"
                   " else the run's model)")
    p.add_argument("--image-size", default=None, help="input size to judge the data against (default: run's / model's)")
    p.add_argument("--preprocessing", default=None, help="YAML/JSON file of your own preprocessing (mean, std, size,"
                   " interpolation, rescale) to check against the model's pretrained_cfg")
    p.add_argument("--max-images", default="5000", help="check a random sample of at most this many images")
    p.add_argument("--seed", default="0")
    p.add_argument("--format", default="text", help="text (default) or json")


def run(args: argparse.Namespace) -> int:
    import json

    from headstart._validation import check_choice, check_number
    from headstart.config import parse_scalar
    from headstart.diagnose import doctor
    from headstart.diagnose.findings import format_findings

    fmt = check_choice("format", args.format, ["text", "json"])
    image_size = None if args.image_size is None else check_number("image_size", parse_scalar(args.image_size), kind=int, low=16, closed="left")
    max_images = check_number("max_images", parse_scalar(args.max_images), kind=int, low=1, closed="left")
    seed = check_number("seed", parse_scalar(args.seed), kind=int, low=0, closed="left")
    findings = doctor(args.target, level=args.level, model=args.model, image_size=image_size,
                      preprocessing=args.preprocessing, max_images=max_images, seed=seed)
    if fmt == "json":
        print(json.dumps([f.to_dict() for f in findings], indent=1))
    else:
        print(format_findings(findings))
    return 0
