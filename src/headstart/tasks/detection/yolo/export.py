"""The hook for ``headstart export`` of a YOLO run: Ultralytics' own ONNX exporter run on the model
rebuilt from the run's bundle (model.yaml + model.safetensors: no pickle), then a parity check of
the raw outputs with onnxruntime.

``headstart export`` does not use it: a YOLO run exports through
:mod:`headstart.export.detection_onnx` like the torchvision detectors (the whole
:class:`~headstart.tasks.detection.yolo.model.YoloDetector`, NMS included, traced into the graph, so
the torch-free box runtime runs it and the export's mAP is the run's). This helper writes
Ultralytics' own raw-head format instead, for runtimes that do their own NMS: a graph with one input ``images`` of shape (1, 3, S, S), float RGB in [0, 1] (S = the
run's input size; pad a resized image at the bottom and right with 114/255, as
:class:`~headstart.tasks.detection.yolo.model.YoloDetector` does), and one output of shape
(1, 4 + C, N): centre-size boxes in input pixels and per-class sigmoid scores, before NMS (the
decoding of ``YoloDetector._decode`` applies unchanged).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["export_yolo_onnx"]


def export_yolo_onnx(run_dir: str | Path, out: str | Path, *, atol: float = 1e-3) -> dict[str, Any]:
    """Export the run's YOLO model to ``out`` (.onnx); returns the graph's description and the
    largest absolute difference from PyTorch on a random input (raises when above ``atol``)."""
    import numpy as np
    import torch

    from headstart.errors import HeadstartError
    from headstart.tasks.detection.export import load_run_model
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    from ultralytics.engine.exporter import Exporter

    detector, record = load_run_model(run_dir)
    model, size = detector.model, detector.image_size
    # the attributes Ultralytics' trainer would have set on the model, which its exporter reads
    model.task, model.names = "detect", dict(enumerate(record["classes"]))
    model.args = {"imgsz": size, "data": ""}
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="headstart-yolo-export-") as tmp:
        model.pt_path = str(Path(tmp) / "model.pt")  # where Ultralytics names its output (nothing is read from it)
        exporter = Exporter(
            overrides={
                "format": "onnx",
                "imgsz": size,
                "batch": 1,
                "dynamic": False,
                "simplify": False,
                "nms": False,
                "half": False,
                "device": "cpu",
                "verbose": False,
            }
        )
        produced = Path(exporter(model=model))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(produced), out)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.inference_mode():
        want = model.eval()(torch.from_numpy(x))[0].numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise HeadstartError(f"The ONNX export of {run_dir} differs from PyTorch by {diff:.2e} (> {atol}); not kept.")
    return {
        "path": str(out),
        "input": [1, 3, size, size],
        "output": list(got.shape),
        "max_abs_diff": diff,
        "classes": list(record["classes"]),
        "layout": "cxcywh input pixels + per-class sigmoid scores, before NMS",
    }
