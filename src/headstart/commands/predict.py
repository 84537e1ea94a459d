"""`headstart predict`: labels for images from a run folder, an ONNX file or a TorchScript file.

With an .onnx file this needs only onnxruntime, Pillow and numpy (no torch)."""

from __future__ import annotations

import argparse
import sys

from headstart.config import parse_scalar


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict labels with a run folder, an .onnx or a TorchScript file",
                       description="Predict the labels of images (files or folders) with the model of a run folder,"
                       " or with a file written by headstart export (.onnx: onnxruntime, no torch needed; .ts).")
    p.add_argument("run", help="a run folder written by headstart fit, or an exported .onnx / .ts file")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--top-k", default="1", help="labels per image (default 1)")
    p.add_argument("--format", default="table", help="table (default), csv or json")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--batch-size", default="32", help="images per batch (default 32)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (run folders and TorchScript)")
    p.add_argument("--threads", default="0", help="onnxruntime threads (default 0: onnxruntime decides)")
    p.add_argument("--conf", help="detection: the lowest score kept (default: the run's, the F1-best on its"
                   " evaluated split)")
    p.add_argument("--max-det", help="detection: most boxes per image (default: the run's, 100)")
    p.add_argument("--save-images", metavar="DIR", help="detection: write each image with its boxes drawn into DIR")


def run(args: argparse.Namespace) -> int:
    from headstart._validation import check_choice, check_number
    from headstart.predict import format_predictions, load_predictor

    top_k = check_number("top_k", parse_scalar(args.top_k), kind=int, low=1, closed="left")
    batch = check_number("batch_size", parse_scalar(args.batch_size), kind=int, low=1, closed="left")
    fmt = check_choice("format", args.format, ["table", "csv", "json"])
    threads = check_number("threads", parse_scalar(args.threads), kind=int, low=0, closed="left")
    predictor = load_predictor(args.run, device=args.device, threads=threads or None)
    if hasattr(predictor, "max_det"):  # a detector: boxes
        from headstart.tasks.detection.predict import draw_boxes, format_box_predictions

        conf = None if args.conf is None else check_number("conf", parse_scalar(args.conf), low=0, high=1,
                                                            closed="both")
        max_det = None if args.max_det is None else check_number("max_det", parse_scalar(args.max_det), kind=int,
                                                                   low=1, closed="left")
        preds = predictor.predict(args.inputs, conf=conf, max_det=max_det, batch_size=batch)
        if args.save_images:
            draw_boxes(preds, args.save_images)
        text = format_box_predictions(preds, fmt)
    else:
        for flag in ("conf", "max_det", "save_images"):
            if getattr(args, flag) is not None:
                from headstart.errors import ConfigError

                raise ConfigError(f"--{flag.replace('_', '-')} is for detection runs; {args.run!r} holds a"
                                  " classification model (use --top-k).")
        preds = predictor.predict(args.inputs, top_k=top_k, batch_size=batch, progress=sys.stderr.isatty())
        text = format_predictions(preds, fmt)
    if args.output:
        from headstart._io import atomic_write_text

        atomic_write_text(args.output, text if text.endswith("\n") else text + "\n")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


