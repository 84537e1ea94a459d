"""Boxes for image files from a detection model: the saved preprocessing (longer side to the
input size), a backend that runs the detector, and the boxes mapped back to each image's own pixels.

The backend is the run's PyTorch model (:class:`TorchBoxBackend`) or an ONNX export
(:class:`headstart.export.box_runtime.OnnxBoxBackend`, torch-free); both take uint8 CHW arrays and
return boxes in those arrays' pixels, sorted by score. Everything else here (image preparation,
the conf / max_det selection, formats, drawing) is numpy and Pillow only, so the light ``predict``
install runs it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["BoxPrediction", "BoxPredictor", "TorchBoxBackend", "prepare_box_image", "load_box_image",
           "select_boxes", "format_box_predictions", "draw_boxes"]


@dataclass(frozen=True)
class BoxPrediction:
    path: str
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # xyxy, the image's own pixels
    labels: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "boxes": [
            {"box": [round(v, 2) for v in b], "label": lab, "score": round(s, 5)}
            for b, lab, s in zip(self.boxes, self.labels, self.scores)]}
        if self.size is not None:
            d["width"], d["height"] = self.size
        if self.error:
            d["error"] = self.error
        return d


def prepare_box_image(image, pre):
    """An upright RGB Pillow image -> uint8 array ``(3, h, w)`` with the longer side at the input
    size (the image cache's :func:`~headstart.data.transforms.resize_image`, in numpy)."""
    import numpy as np

    from headstart.data.transforms import resize_image

    resized = resize_image(image, pre)
    return np.ascontiguousarray(np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1))


def load_box_image(path: str | Path, pre):
    """``(array, scale, (width, height))`` for an image file: the very pixels the run was evaluated
    on (the cache's decode, JPEG draft size included, and resize), the factor from the image's own
    pixels to the array's, and the image's upright size."""
    from headstart.data.decode import image_size, open_rgb

    size = image_size(path)
    array = prepare_box_image(open_rgb(path, draft=2 * pre.resize_size), pre)
    return array, array.shape[-1] / size[0], size


def select_boxes(boxes, scores, labels, conf: float, max_det: int):
    """The post-processing outside the model: boxes scoring at least ``conf``, at most ``max_det``
    (the detector returns them sorted by score, after its own NMS)."""
    keep = scores >= conf
    return boxes[keep][:max_det], scores[keep][:max_det], labels[keep][:max_det]


class TorchBoxBackend:
    """A detection run's PyTorch model behind the backend interface: ``detect(arrays)`` ->
    ``[(boxes, scores, class indices), ...]`` as numpy, boxes in the arrays' pixels. A list of
    images runs as one batch (torchvision pads them to a common size)."""

    kind = "pytorch"
    task = "detect"

    def __init__(self, model, classes: Sequence[str], preprocessing, *, conf: float | None = None, max_det: int = 100,
                 device: str = "cpu", first_label: int = 1, metadata: dict | None = None):
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes, self.preprocessing = list(classes), preprocessing
        self.conf, self.max_det, self.first_label = conf, int(max_det), int(first_label)
        self.metadata = metadata or {"labels": self.classes, "preprocessing": preprocessing.to_dict(), "task": "detect",
                                     "conf": conf, "max_det": max_det}

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> "TorchBoxBackend":
        from headstart.tasks.detection.export import load_run_model

        model, record = load_run_model(run_dir)
        meta = _run_metadata(run_dir, record)
        return cls(model, record["classes"], record["preprocessing"], conf=record["conf"], max_det=record["max_det"],
                   device=device, first_label=record["detector"].first_label, metadata=meta)

    def detect(self, arrays: Sequence) -> list[tuple]:
        import torch

        with torch.inference_mode():
            outs = self.model([torch.from_numpy(a).to(self.device).float() / 255.0 for a in arrays])
        return [(o["boxes"].float().cpu().numpy(), o["scores"].float().cpu().numpy(),
                 o["labels"].cpu().numpy() - self.first_label) for o in outs]


def _run_metadata(run_dir, record) -> dict[str, Any]:
    from headstart._version import __version__
    from headstart.run_folder import RunFolder

    run = RunFolder(run_dir)
    model = run.read_json("model/model.json")
    provenance = run.read_json("model/provenance.json") if (run.model_dir / "provenance.json").is_file() else {}
    return {"task": "detect", "headstart_version": __version__, "architecture": model.get("architecture"), "labels": list(record["classes"]),
            "preprocessing": {**record["preprocessing"].to_dict(), "resize_size": record["preprocessing"].resize_size},
            "detector": record["detector"].to_dict(), "conf": record["conf"], "max_det": record["max_det"],
            "provenance": {**provenance, "run_dir": str(Path(run_dir).resolve())}}


class BoxPredictor:
    """``predict(inputs, conf=..., max_det=...)`` over image files and folders. ``conf`` defaults
    to the run's threshold (the one that maximised F1 on its evaluated split).

    ``BoxPredictor(model, classes, preprocessing)`` wraps an in-memory torchvision detector;
    :meth:`from_run` a run folder; :meth:`from_backend` any backend (an ONNX export on a light
    install)."""

    def __init__(self, model, classes: Sequence[str], preprocessing, *, conf: float | None = None, max_det: int = 100,
                 device: str = "cpu", first_label: int = 1):
        self._set_backend(TorchBoxBackend(model, classes, preprocessing, conf=conf, max_det=max_det, device=device,
                                          first_label=first_label))

    def _set_backend(self, backend) -> None:
        self.backend = backend
        self.classes = list(backend.classes)
        self.preprocessing = backend.preprocessing
        self.conf, self.max_det = backend.conf, int(backend.max_det)
        self.metadata = backend.metadata
        self.model = getattr(backend, "model", None)
        self.first_label = getattr(backend, "first_label", 0)

    @classmethod
    def from_backend(cls, backend) -> "BoxPredictor":
        self = cls.__new__(cls)
        self._set_backend(backend)
        return self

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> "BoxPredictor":
        return cls.from_backend(TorchBoxBackend.from_run(run_dir, device=device))

    @property
    def kind(self) -> str:
        return self.backend.kind

    def predict(self, inputs: Iterable[str | Path], *, conf: float | None = None, max_det: int | None = None,
                batch_size: int = 8, progress: bool = False, **_: Any) -> list[BoxPrediction]:
        from headstart.data.inputs import expand_inputs
        from headstart.errors import DataError

        conf = self.conf if conf is None else conf
        conf = 0.0 if conf is None else float(conf)
        max_det = self.max_det if max_det is None else int(max_det)
        paths = expand_inputs(inputs)
        results: list[BoxPrediction] = []
        for start in range(0, len(paths), batch_size):
            images, ok = [], []
            for p in paths[start : start + batch_size]:
                try:
                    images.append(load_box_image(p, self.preprocessing))
                    ok.append(p)
                except (DataError, OSError) as exc:
                    results.append(BoxPrediction(str(p), error=str(exc)))
            if not images:
                continue
            outs = self.backend.detect([array for array, _, _ in images])
            for p, (_, scale, size), out in zip(ok, images, outs):
                results.append(self.to_prediction(str(p), out, scale, size, conf, max_det))
        order = {str(p): i for i, p in enumerate(paths)}
        results.sort(key=lambda r: order[r.path])
        return results

    def to_prediction(self, path: str, out, scale: float, size, conf: float, max_det: int) -> BoxPrediction:
        """One image's backend output -> a :class:`BoxPrediction` in the image's own pixels."""
        boxes, scores, labels = select_boxes(*out, conf, max_det)
        return BoxPrediction(path, tuple(tuple(float(v) / scale for v in b) for b in boxes.tolist()),
                             tuple(self.classes[int(i)] for i in labels.tolist()),
                             tuple(float(s) for s in scores.tolist()), tuple(size))


def format_box_predictions(preds: Sequence[BoxPrediction], fmt: str = "table") -> str:
    """``json`` (per image: boxes as xyxy pixels, label, score), ``csv`` (one row per box) or
    ``table``."""
    if fmt == "json":
        return json.dumps([p.to_dict() for p in preds], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["path", "label", "score", "x1", "y1", "x2", "y2", "error"])
        for p in preds:
            if p.error:
                writer.writerow([p.path, "", "", "", "", "", "", p.error])
            for box, label, score in zip(p.boxes, p.labels, p.scores):
                writer.writerow([p.path, label, f"{score:.5f}", *(f"{v:.2f}" for v in box), ""])
        return buf.getvalue()
    lines = []
    for p in preds:
        if p.error:
            lines.append(f"{p.path}: ERROR {p.error}")
            continue
        found = ", ".join(f"{lab} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]" for b, lab, s in
                          zip(p.boxes, p.labels, p.scores))
        lines.append(f"{p.path}: {len(p.boxes)} box(es)" + (f": {found}" if found else ""))
    return "\n".join(lines)


def draw_boxes(preds: Sequence[BoxPrediction], out_dir: str | Path) -> list[Path]:
    """Each image with its boxes drawn, as PNG files in ``out_dir`` (never beside the input)."""
    from PIL import ImageDraw

    from headstart.data.decode import open_rgb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, seen = [], set()
    for p in preds:
        if p.error:
            continue
        image = open_rgb(p.path)
        draw = ImageDraw.Draw(image)
        width = max(1, round(max(image.size) / 300))
        for box, label, score in zip(p.boxes, p.labels, p.scores):
            draw.rectangle(box, outline=(255, 40, 40), width=width)
            draw.text((box[0] + 2, box[1] + 1), f"{label} {score:.2f}", fill=(255, 255, 0))
        name = Path(p.path).stem
        target, n = out_dir / f"{name}.png", 2
        while target in seen:
            target, n = out_dir / f"{name}-{n}.png", n + 1
        seen.add(target)
        image.save(target)
        written.append(target)
    return written
