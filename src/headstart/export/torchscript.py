"""TorchScript export: ``RUN/export/model.ts`` (uint8 crops in, probabilities out, like the ONNX
graph) with the metadata inside the file (extra file ``headstart.json``) and beside it
(``model.ts.json``).

Traced rather than scripted: timm models trace cleanly and not all of them script. Tracing freezes
Python control flow, which the parity check (batch of many and of one, real and random images)
would catch. Note that loading a TorchScript file runs TorchScript code, not Python pickle.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Sequence

from headstart.export.parity import DEFAULT_TOLERANCE, ExportResult, check_against_model, verify_or_remove

__all__ = ["export_torchscript"]


def export_torchscript(run_dir: str | Path, output: str | Path | None = None, *,
                       images: Sequence[str | Path] | None = None,
                       tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export the model of ``run_dir`` to TorchScript (default ``RUN/export/model.ts``), reload the
    saved file and verify it against the PyTorch model. Raises
    :class:`~headstart.export.parity.ParityError` (and removes the files) on a mismatch."""
    import os

    import torch

    from headstart._io import atomic_write_text
    from headstart.export.metadata import build_metadata
    from headstart.export.runtime import TorchScriptBackend
    from headstart.run_folder import RunFolder
    from headstart.tasks import task_of_run

    t0 = time.perf_counter()
    run = RunFolder.open(run_dir)
    target = Path(output) if output is not None else run.path / "export" / "model.ts"
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar = target.with_name(target.name + ".json")
    spec = task_of_run(run.path)
    load_run_model = spec.part("load_model", "`headstart export --format torchscript`")
    probability_model = spec.part("export_wrapper", "`headstart export --format torchscript`")
    model, record = load_run_model(run.path)
    pre = record["preprocessing"]
    wrapped = probability_model(model, len(record["classes"]), pre)
    meta = build_metadata(run, fmt="torchscript")
    text = json.dumps(meta, indent=1, sort_keys=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        example = torch.zeros((2, 3, pre.input_size, pre.input_size), dtype=torch.uint8)
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.save is deprecated" (torch 2.10+)
            torch.jit.save(traced, str(tmp), _extra_files={"headstart.json": text})
        backend = TorchScriptBackend(tmp)
        report = check_against_model(wrapped, backend.run, run.path, pre, images, tolerance=tolerance)
        verify_or_remove(report, tmp, "TorchScript", target)
        os.replace(tmp, target)
        atomic_write_text(sidecar, text + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(target, "torchscript", report, meta, extra_files=(sidecar,), seconds=time.perf_counter() - t0)
