"""ONNX export: ``RUN/export/model.onnx`` with the normalisation and the probabilities inside, a
dynamic batch dimension and the headstart metadata in ``metadata_props``.

Exporter: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-based exporter) at opset 17.
The newer ``dynamo=True`` exporter also works for the zoo's CNNs but takes ~10x longer (7 s vs
0.6 s for MobileNetV2) and cannot down-convert to opset 17, which older onnxruntime releases need;
the parity check below guards either way.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Sequence

from headstart.export.parity import DEFAULT_TOLERANCE, ExportResult, check_against_model, verify_or_remove

__all__ = ["export_onnx", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17


def _export_graph(module, example, path: Path, opset: int) -> None:
    import torch

    from headstart.export.metadata import INPUT_NAME, OUTPUT_NAME

    with warnings.catch_warnings():
        # the legacy exporter announces its deprecation on every call
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            module, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
            do_constant_folding=True, dynamo=False,
        )


def _attach_metadata(path: Path, meta: dict) -> None:
    import onnx

    from headstart.export.metadata import onnx_metadata_props

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in onnx_metadata_props(meta).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "headstart"
    model.producer_version = meta["headstart_version"]
    model.doc_string = f"{meta['architecture']} classifier: {meta['input']} -> {meta['output']}"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def export_onnx(run_dir: str | Path, output: str | Path | None = None, *, opset: int = DEFAULT_OPSET,
                images: Sequence[str | Path] | None = None, tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export the model of ``run_dir`` to ONNX (default ``RUN/export/model.onnx``) and verify it with
    onnxruntime against PyTorch on real images (``images``, or the run's split) and random ones.

    Raises :class:`~headstart.export.parity.ParityError` (and removes the file) when any
    probability differs by ``tolerance`` or more.
    """
    import os

    import torch

    from headstart._imports import optional_import
    from headstart.export.metadata import build_metadata
    from headstart.export.runtime import OnnxBackend
    from headstart.run_folder import RunFolder
    from headstart.tasks import task_of_run

    optional_import("onnx", extra="export")
    optional_import("onnxruntime", extra="export")
    t0 = time.perf_counter()
    run = RunFolder.open(run_dir)
    spec = task_of_run(run.path)
    if spec.name == "detect":  # one image in, boxes out: see detection_onnx
        from headstart.export.detection_onnx import export_detection_onnx

        return export_detection_onnx(run.path, output, opset=opset, images=images, tolerance=tolerance)
    target = Path(output) if output is not None else run.path / "export" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    load_run_model = spec.part("load_model", "`headstart export --format onnx`")
    probability_model = spec.part("export_wrapper", "`headstart export --format onnx`")
    model, record = load_run_model(run.path)
    pre = record["preprocessing"]
    wrapped = probability_model(model, len(record["classes"]), pre)
    meta = build_metadata(run, fmt="onnx")
    # Written beside the target and renamed once verified: a failed export never replaces a good file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        example = torch.zeros((2, 3, pre.input_size, pre.input_size), dtype=torch.uint8)
        _export_graph(wrapped, example, tmp, opset)
        _attach_metadata(tmp, meta)
        backend = OnnxBackend(tmp)
        report = check_against_model(wrapped, backend.run, run.path, pre, images, tolerance=tolerance)
        del backend
        verify_or_remove(report, tmp, "ONNX", target)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(target, "onnx", report, meta, seconds=time.perf_counter() - t0)
