"""Prediction from a run folder: the saved weights with the saved preprocessing, nothing else.

Loading reads only safetensors and JSON, so a run folder never executes pickled code.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from headstart.errors import DatasetNotFoundError
from headstart.run_folder import RunFolder

__all__ = ["Prediction", "Predictor", "expand_inputs", "format_predictions"]


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


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded recursively to their image files (sorted)."""
    from headstart.data.decode import IMAGE_EXTENSIONS

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
            )
            if not found:
                raise DatasetNotFoundError(f"The folder {str(p)!r} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise DatasetNotFoundError(f"The input {str(p)!r} does not exist. Pass image files or folders of images.")
    return paths


class Predictor:
    """A trained model with its preprocessing and labels."""

    def __init__(self, model: torch.nn.Module, classes: Sequence[str], preprocessing, device: str | torch.device = "cpu"):
        from headstart.data.transforms import build_eval_transform

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.preprocessing = preprocessing
        self._transform = build_eval_transform(preprocessing)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> "Predictor":
        import timm
        from safetensors.torch import load_file

        from headstart.data.transforms import Preprocessing

        run = RunFolder.open(run_dir)
        meta = run.read_json("model/model.json")
        classes = run.read_json("model/labels.json")["classes"]
        pre = Preprocessing.from_dict(run.read_json("model/preprocessing.json"))
        model = timm.create_model(meta["architecture"], pretrained=False, num_classes=meta["num_outputs"])
        model.load_state_dict(load_file(run.model_dir / "model.safetensors"))
        return cls(model, classes, pre, device)

    def _load(self, path: Path) -> torch.Tensor:
        from headstart.data.transforms import load_resized

        return self._transform(load_resized(path, self.preprocessing))

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        from headstart.train.loss import logits_to_probs

        logits = self.model(images.to(self.device))
        return logits_to_probs(logits, len(self.classes)).cpu()

    def predict(self, inputs: Iterable[str | Path], *, top_k: int = 1, batch_size: int = 32, progress: bool = False) -> list[Prediction]:
        """Top-k labels and probabilities for each image; unreadable files get an ``error`` entry
        instead of stopping the whole batch."""
        from headstart.errors import DataError

        paths = expand_inputs(inputs)
        k = max(1, min(top_k, len(self.classes)))
        results: list[Prediction] = []
        bar = _progress(len(paths)) if progress else None
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            tensors, ok = [], []
            for p in chunk:
                try:
                    tensors.append(self._load(p))
                    ok.append(p)
                except (DataError, OSError) as exc:
                    results.append(Prediction(str(p), (), (), error=str(exc)))
            if tensors:
                probs = self.predict_proba(torch.stack(tensors))
                top = probs.topk(k, dim=1)
                for p, values, idx in zip(ok, top.values.tolist(), top.indices.tolist()):
                    results.append(Prediction(str(p), tuple(self.classes[i] for i in idx), tuple(values)))
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        order = {str(p): i for i, p in enumerate(paths)}
        results.sort(key=lambda r: order[r.path])
        return results


def _progress(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="predict", leave=False)


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
