"""Prediction from a run folder, an ONNX file or a TorchScript file, with the preprocessing saved
with the model and nothing else.

Every artefact is driven the same way: images are decoded and resized + centre-cropped with numpy
and Pillow (:mod:`headstart.export.preprocess`), batched as uint8 ``(N, 3, S, S)``, and a backend
(:mod:`headstart.export.runtime`) returns probabilities. The ONNX path never imports torch, so it
runs with only onnxruntime, Pillow and numpy installed. Loading reads only safetensors, ONNX and
JSON (and TorchScript, which runs TorchScript code, not pickle), so no pickled code runs.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from headstart.data.inputs import expand_inputs

__all__ = ["Prediction", "Predictor", "load_predictor", "expand_inputs", "format_predictions"]


@dataclass(frozen=True)
class Prediction:
    path: str
    labels: tuple[str, ...]  # top-k, most likely first
    probs: tuple[float, ...]
    error: str | None = None

    def to_dict(self) -> dict:
        d = {"path": self.path, "label": self.labels[0] if self.labels else None,
             "top_k": [{"label": l, "prob": p} for l, p in zip(self.labels, self.probs)]}
        if self.error:
            d["error"] = self.error
        return d


def load_predictor(path: str | Path, *, device: str = "cpu", threads: int | None = None) -> "Predictor":
    """A predictor for a run folder, an ``.onnx`` file or a TorchScript file (``.ts``): a
    :class:`Predictor` (labels) for classification, a
    :class:`~headstart.tasks.detection.predict.BoxPredictor` (boxes) for a detection run folder or
    its ONNX export (which needs no torch)."""
    from headstart.export.runtime import load_backend

    backend = load_backend(path, device=device, threads=threads)
    if getattr(backend, "task", "classify") == "detect":
        from headstart.tasks.detection.predict import BoxPredictor

        return BoxPredictor.from_backend(backend)
    return Predictor.from_backend(backend)


class Predictor:
    """A trained model with its preprocessing and labels.

    ``Predictor(model, classes, preprocessing)`` wraps an in-memory PyTorch model (logits out);
    :meth:`load` opens any artefact; :meth:`from_run` a run folder.
    """

    def __init__(self, model: Any, classes: Sequence[str], preprocessing, device: str = "cpu"):
        from headstart.export.runtime import TorchBackend

        self._set_backend(TorchBackend(model, classes, preprocessing, device=device))

    def _set_backend(self, backend) -> None:
        self.backend = backend
        self.classes = list(backend.classes)
        self.preprocessing = backend.preprocessing
        self.metadata = backend.metadata
        self.model = getattr(backend, "model", None)

    @classmethod
    def from_backend(cls, backend) -> "Predictor":
        self = cls.__new__(cls)
        self._set_backend(backend)
        return self

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> "Predictor":
        from headstart.export.runtime import TorchBackend

        return cls.from_backend(TorchBackend.from_run(run_dir, device=device))

    load = staticmethod(load_predictor)

    @property
    def kind(self) -> str:
        return self.backend.kind

    def predict_proba(self, images):
        """uint8 crops ``(N, 3, S, S)`` (see :func:`headstart.export.prepare_image`) -> numpy
        probabilities ``(N, num_classes)``."""
        import numpy as np

        return np.asarray(self.backend.run(images), dtype=np.float32)

    def predict(self, inputs: Iterable[str | Path], *, top_k: int = 1, batch_size: int = 32, progress: bool = False) -> list[Prediction]:
        """Top-k labels and probabilities for each image; unreadable files get an ``error`` entry
        instead of stopping the whole batch."""
        import numpy as np

        from headstart.errors import DataError
        from headstart.export.preprocess import load_image_array

        paths = expand_inputs(inputs)
        k = max(1, min(top_k, len(self.classes)))
        results: list[Prediction] = []
        bar = _progress(len(paths)) if progress else None
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            arrays, ok = [], []
            for p in chunk:
                try:
                    arrays.append(load_image_array(p, self.preprocessing))
                    ok.append(p)
                except (DataError, OSError) as exc:
                    results.append(Prediction(str(p), (), (), error=str(exc)))
            if arrays:
                probs = self.predict_proba(np.stack(arrays))
                top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
                for p, row, idx in zip(ok, probs, top):
                    results.append(Prediction(str(p), tuple(self.classes[i] for i in idx),
                                              tuple(float(row[i]) for i in idx)))
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        order = {str(p): i for i, p in enumerate(paths)}
        results.sort(key=lambda r: order[r.path])
        return results


def _progress(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the light predict install has no tqdm: count on stderr instead
        return _PlainProgress(total)
    return tqdm(total=total, unit="img", desc="predict", leave=False)


class _PlainProgress:
    def __init__(self, total: int):
        self.total, self.done = total, 0

    def update(self, n: int) -> None:
        self.done += n
        print(f"\rpredict: {self.done}/{self.total} images", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


def format_predictions(preds: Sequence[Prediction], fmt: str = "table") -> str:
    """``table`` (human), ``csv`` (path, rank, label, prob) or ``json``."""
    if fmt == "json":
        return json.dumps([p.to_dict() for p in preds], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["path", "rank", "label", "prob", "error"])
        for p in preds:
            if p.error:
                writer.writerow([p.path, "", "", "", p.error])
            for rank, (label, prob) in enumerate(zip(p.labels, p.probs), start=1):
                writer.writerow([p.path, rank, label, f"{prob:.6f}", ""])
        return buf.getvalue()
    lines = []
    for p in preds:
        if p.error:
            lines.append(f"{p.path}: ERROR {p.error}")
        else:
            lines.append(f"{p.path}: " + ", ".join(f"{l} {pr:.3f}" for l, pr in zip(p.labels, p.probs)))
    return "\n".join(lines)
