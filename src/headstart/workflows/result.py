"""What a fit returns, and ``load``, which opens a finished run folder as the same object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from headstart.config import FitConfig, build_config, load_yaml
from headstart.run_folder import RunFolder

__all__ = ["FitResult", "load"]


@dataclass
class FitResult:
    """What a run produced. ``predict`` runs the trained model with its own preprocessing."""

    run_dir: Path
    config: FitConfig
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    classes: list[str]
    predictor: Any = field(repr=False, default=None)
    task: str = "classify"

    def predict(self, inputs: str | Path | Iterable[str | Path], *, top_k: int = 1, batch_size: int = 32,
                **options: Any):
        """Top-k labels (classification) or boxes (detection: ``conf=``, ``max_det=``) per image."""
        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        if self.predictor is None:
            from headstart.predict import load_predictor

            self.predictor = load_predictor(self.run_dir)
        return self.predictor.predict(inputs, top_k=top_k, batch_size=batch_size, **options)


def load(run_dir: str | Path, device: str = "cpu") -> FitResult:
    """Open a finished run folder (weights, labels, preprocessing, history, metrics); its
    ``predict`` runs on ``device`` ("cpu", "cuda", "cuda:1", ...)."""
    from headstart.predict import load_predictor
    from headstart.tasks import task_of_run

    run = RunFolder.open(run_dir)
    spec = task_of_run(run.path)
    cfg = build_config(config=load_yaml(run.config_path))
    metrics = run.read_json("metrics.json") if run.metrics_path.is_file() else {}
    predictor = load_predictor(run.path, device=device)
    return FitResult(run.path, cfg, run.read_history(), metrics, predictor.classes, predictor, task=spec.name)
