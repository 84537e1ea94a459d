"""Backends that turn a batch of uint8 crops ``(N, 3, S, S)`` into probabilities ``(N, C)``.

- :class:`OnnxBackend`: onnxruntime; numpy only, never imports torch (the light install).
- :class:`TorchScriptBackend`: ``torch.jit.load``. Loading a TorchScript file runs TorchScript code
  (the model's compiled ``forward``) in torch's interpreter; it does not unpickle arbitrary Python
  objects, but only load TorchScript files you trust, as with any program.
- :class:`TorchBackend`: the run folder's PyTorch model (safetensors + JSON), eager.

All expose ``classes``, ``preprocessing``, ``metadata``, ``kind`` and ``run(batch) -> probs``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from headstart.export.metadata import INPUT_NAME, InvalidModelError, metadata_from_props, read_torchscript_sidecar
from headstart.export.preprocess import preprocessing_from_metadata

__all__ = ["OnnxBackend", "TorchScriptBackend", "TorchBackend", "load_backend", "artefact_kind"]

TORCHSCRIPT_SUFFIXES = (".ts", ".pt", ".torchscript")


def _import_torch():
    """torch, or an install hint: run folders and TorchScript files need the 'train' extra, .onnx does not."""
    from headstart._imports import optional_import

    return optional_import("torch", extra="train", feature="A run folder or a TorchScript file",
                           hint="An .onnx file written by `headstart export RUN --format onnx` needs only"
                           " 'headstart[predict]' (onnxruntime).")


class OnnxBackend:
    kind = "onnx"

    def __init__(self, path: str | Path, *, threads: int | None = None):
        from headstart._imports import optional_import

        ort = optional_import("onnxruntime", extra="predict")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise InvalidModelError(f"onnxruntime cannot load {str(path)!r}: {exc}. Export the run folder again.") from None
        self.metadata = metadata_from_props(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.classes = list(self.metadata["labels"])
        self.preprocessing = preprocessing_from_metadata(self.metadata)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.uint8)})[0]


class TorchScriptBackend:
    kind = "torchscript"

    def __init__(self, path: str | Path, *, device: str = "cpu"):
        torch = _import_torch()
        self.path, self.device = Path(path), torch.device(device)
        extra = {"headstart.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated" (torch 2.10+)
                self.module = torch.jit.load(str(path), map_location=self.device, _extra_files=extra).eval()
        except RuntimeError as exc:
            raise InvalidModelError(f"{str(path)!r} is not a readable TorchScript file ({str(exc).splitlines()[0]}).") from None
        if extra["headstart.json"]:
            self.metadata = json.loads(extra["headstart.json"])
        else:
            self.metadata = read_torchscript_sidecar(path)
        self.classes = list(self.metadata["labels"])
        self.preprocessing = preprocessing_from_metadata(self.metadata)

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)).cpu().numpy()


class TorchBackend:
    kind = "pytorch"

    def __init__(self, model, classes, preprocessing, *, device: str = "cpu", metadata: dict | None = None,
                 task: str = "classify"):
        torch = _import_torch()
        from headstart.tasks import get_task

        probability_model = get_task(task).part("export_wrapper", "prediction with PyTorch")
        self.device = torch.device(device)
        self.model = model
        self.wrapped = probability_model(model, len(classes), preprocessing).to(self.device).eval()
        self.classes, self.preprocessing = list(classes), preprocessing
        self.metadata = metadata or {"labels": self.classes, "preprocessing": preprocessing.to_dict()}

    @classmethod
    def from_run(cls, run_dir: str | Path, *, device: str = "cpu") -> "TorchBackend":
        _import_torch()
        from headstart.export.metadata import build_metadata
        from headstart.run_folder import RunFolder
        from headstart.tasks import task_of_run

        spec = task_of_run(run_dir)
        model, record = spec.part("load_model", "prediction from a run folder")(run_dir)
        meta = build_metadata(RunFolder(run_dir), fmt="pytorch")
        return cls(model, record["classes"], record["preprocessing"], device=device, metadata=meta, task=spec.name)

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        self.wrapped.eval()
        with torch.inference_mode():
            return self.wrapped(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)).cpu().numpy()


def artefact_kind(path: str | Path) -> str:
    """``'run'``, ``'onnx'`` or ``'torchscript'`` for a run folder or model file; a clear error otherwise."""
    from headstart.errors import RunFolderError

    path = Path(path)
    if path.is_dir():
        return "run"
    if not path.exists():
        what = "model file" if path.suffix.lower() in (".onnx", *TORCHSCRIPT_SUFFIXES) else "run folder"
        raise RunFolderError(
            f"The {what} {str(path)!r} does not exist. Pass a run folder (the --out of headstart fit), or an .onnx"
            " or TorchScript (.ts) file written by headstart export."
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    raise InvalidModelError(
        f"Cannot tell what kind of model {str(path)!r} is from its suffix {suffix!r}. Pass a run folder, an .onnx"
        f" file or a TorchScript file ({', '.join(TORCHSCRIPT_SUFFIXES)}) written by headstart export."
    )


def load_backend(path: str | Path, *, device: str = "cpu", threads: int | None = None) -> Any:
    """The backend for a run folder or model file; a detector's (``task == 'detect'``) returns boxes
    through ``detect(arrays)`` instead of probabilities through ``run(batch)``."""
    kind = artefact_kind(path)
    if kind == "onnx":
        backend = OnnxBackend(path, threads=threads)
        if backend.metadata.get("task") == "detect":
            from headstart.export.box_runtime import OnnxBoxBackend

            del backend  # a detector's session has its own options (see box_runtime)
            return OnnxBoxBackend(path, threads=threads)
        return backend
    if kind == "torchscript":
        return TorchScriptBackend(path, device=device)
    _import_torch()
    from headstart.tasks import task_of_run

    if task_of_run(path).name == "detect":
        from headstart.tasks.detection.predict import TorchBoxBackend

        return TorchBoxBackend.from_run(path, device=device)
    return TorchBackend.from_run(path, device=device)
