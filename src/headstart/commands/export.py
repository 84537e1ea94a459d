"""`headstart export`: a run folder's model as a verified ONNX or TorchScript file."""

from __future__ import annotations

import argparse

from headstart.config import parse_scalar

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a run folder's model to ONNX or TorchScript (verified against PyTorch)",
        description="Export the model of a run folder with its preprocessing built in: uint8 RGB crops at the"
        " model's input size in, class probabilities out; labels and preprocessing in the file's metadata."
        " A detection run exports to ONNX whole (one uint8 image in, boxes, scores and labels out, after NMS)."
        " The export is checked against the PyTorch model before it is reported done (a detector: boxes matched"
        " by IoU, and its mAP on the run's evaluated split).")
    p.add_argument("run", help="a run folder written by headstart fit")
    p.add_argument("--format", default="onnx", help="onnx (default) or torchscript")
    p.add_argument("--output", "-o", help="file to write (default RUN/export/model.onnx or model.ts)")
    p.add_argument("--images", nargs="+", help="images for the parity check (default: the run's split.json)")
    p.add_argument("--opset", default="17", help="ONNX opset (default 17)")
    p.add_argument("--tolerance", default="1e-4",
                   help="largest allowed |probability difference|, or a detector's |score difference| (default 1e-4)")


def run(args: argparse.Namespace) -> int:
    from headstart.export.api import export_model

    result = export_model(args.run, args.format,
                          output=args.output, images=args.images, opset=parse_scalar(args.opset),
                          tolerance=parse_scalar(args.tolerance))
    print(result.summary())
    for extra in result.extra_files:
        print(f"metadata: {extra}")
    return 0
