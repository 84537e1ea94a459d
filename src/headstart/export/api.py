"""``export_model(run, format=...)``: the one entry point the CLI and the Python API share."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from headstart._validation import check_choice, check_number
from headstart.export.parity import DEFAULT_TOLERANCE, ExportResult

__all__ = ["export_model", "FORMATS"]

FORMATS = ("onnx", "torchscript")


def export_model(run_dir: str | Path, format: str = "onnx", *, output: str | Path | None = None,
                 images: Sequence[str | Path] | None = None, opset: int = 17,
                 tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export a run folder's model to ``format`` (``'onnx'`` or ``'torchscript'``), verified against
    PyTorch (see :mod:`headstart.export.parity`)."""
    fmt = check_choice("format", format, FORMATS)
    tolerance = check_number("tolerance", tolerance, kind=float, low=0, closed="neither")
    if fmt == "onnx":
        from headstart.export.onnx import export_onnx

        opset = check_number("opset", opset, kind=int, low=13, high=23, closed="both")
        return export_onnx(run_dir, output, opset=opset, images=images, tolerance=tolerance)
    from headstart.export.torchscript import export_torchscript

    return export_torchscript(run_dir, output, images=images, tolerance=tolerance)
