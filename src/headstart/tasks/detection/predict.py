"""Boxes for image files from a detection run folder: the saved preprocessing (longer side to the
input size), the detector, and the boxes mapped back to each image's own pixels."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["BoxPrediction", "BoxPredictor", "format_box_predictions", "draw_boxes"]


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


class BoxPredictor:
    """``predict(inputs, conf=..., max_det=...)`` over image files and folders. ``conf`` defaults
    to the run's threshold (the one that maximised F1 on its evaluated split)."""

    kind = "pytorch"

    def __init__(self, model, classes: Sequence[str], preprocessing, *, conf: float | None = None, max_det: int = 100,
                 device: str = "cpu", first_label: int = 1):
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.preprocessing = preprocessing
        self.conf = conf
        self.max_det = max_det
        self.first_label = first_label

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> "BoxPredictor":
        from headstart.tasks.detection.export import load_run_model

        model, record = load_run_model(run_dir)
        return cls(model, record["classes"], record["preprocessing"], conf=record["conf"], max_det=record["max_det"],
                   device=device, first_label=record["detector"].first_label)

    def predict(self, inputs: Iterable[str | Path], *, conf: float | None = None, max_det: int | None = None,
                batch_size: int = 8, progress: bool = False, **_: Any) -> list[BoxPrediction]:
        import torch

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
                    images.append(self._load(p))
                    ok.append(p)
                except (DataError, OSError) as exc:
                    results.append(BoxPrediction(str(p), error=str(exc)))
            if not images:
                continue
            with torch.inference_mode():
                outs = self.model([im.to(self.device) for im, _, _ in images])
            for p, (_, scale, size), out in zip(ok, images, outs):
                keep = out["scores"] >= conf
                boxes = (out["boxes"][keep][:max_det].float().cpu() / scale).tolist()
                scores = out["scores"][keep][:max_det].float().cpu().tolist()
                labels = [self.classes[int(i) - self.first_label] for i in out["labels"][keep][:max_det].cpu().tolist()]
                results.append(BoxPrediction(str(p), tuple(tuple(b) for b in boxes), tuple(labels), tuple(scores), size))
        order = {str(p): i for i, p in enumerate(paths)}
        results.sort(key=lambda r: order[r.path])
        return results

    def _load(self, path: Path):
        """(float CHW in [0, 1] at the input size, scale from the image's pixels, (width, height)):
        the very pixels the run was evaluated on (the image cache's decode and resize)."""
        from headstart.data.decode import image_size
        from headstart.data.transforms import load_resized

        size = image_size(path)
        image = load_resized(path, self.preprocessing)
        return image.float() / 255.0, image.shape[-1] / size[0], size


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
