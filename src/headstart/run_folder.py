"""The run folder: one directory holding everything a run produced, so that anything a user sees
can be traced back to what made it.

```
runs/NAME/
  config.yaml        the fully resolved FitConfig ('auto' values replaced by what was chosen)
  split.json         the exact train/val/test file lists
  history.csv        one row per epoch (loss, metrics, lr, time, images/s)
  metrics.json       test-set metrics
  plots/             learning_curves.png, confusion_matrix.png
  checkpoints/       last.pt (resume), best.pt
  model/             model.safetensors, model.json (with the run's task), labels.json, preprocessing.json,
                     provenance.json
```
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

from headstart._io import atomic_write, atomic_write_json, atomic_write_text
from headstart.errors import RunFolderError

__all__ = ["RunFolder", "default_run_dir", "dataset_name"]

MODEL_FILES = ("model.safetensors", "model.json", "labels.json", "preprocessing.json")


def dataset_name(data_path: str | os.PathLike | None) -> str:
    """The name a dataset's folders are called by: a CSV's stem, a folder's name, else ``run``."""
    if data_path is None:
        return "run"
    p = Path(data_path)
    return (p.stem if p.suffix.lower() == ".csv" else p.name) or "run"


def default_run_dir(data_path: str | os.PathLike | None, *, prefix: str = "", suffix: str = "",
                    root: Path = Path("runs"), unique: bool = True) -> Path:
    """``root/<prefix><dataset name><suffix>``: where a command writes unless told (see
    :func:`dataset_name`). With ``unique``, a folder that already holds something gives way to
    ``...-2``, ``-3``...; without, the same folder every time (a rank table that others reuse).

    ``headstart fit``: ``runs/<name>``; ``headstart tune``: ``runs/tune-<name>``; ``headstart
    rank``: ``runs/<name>-rank`` (not unique).
    """
    base = f"{prefix}{dataset_name(data_path)}{suffix}"
    candidate, n = Path(root) / base, 2
    while unique and candidate.exists() and any(candidate.iterdir()):
        candidate, n = Path(root) / f"{base}-{n}", n + 1
    return candidate


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # paths -------------------------------------------------------------------------------
    config_path = property(lambda self: self.path / "config.yaml")
    split_path = property(lambda self: self.path / "split.json")
    history_path = property(lambda self: self.path / "history.csv")
    metrics_path = property(lambda self: self.path / "metrics.json")
    plots_dir = property(lambda self: self.path / "plots")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    model_dir = property(lambda self: self.path / "model")
    cache_dir = property(lambda self: self.path / "cache")

    @classmethod
    def create(cls, path: str | Path, *, resume: bool = False) -> "RunFolder":
        run = cls(path)
        if resume:
            if not run.config_path.is_file():
                raise RunFolderError(
                    f"Cannot resume: {str(run.path)!r} has no config.yaml, so it is not a headstart run folder."
                    " Pass the --out folder of the interrupted run."
                )
            return run
        if run.metrics_path.exists() or run.checkpoint_dir.exists():
            raise RunFolderError(
                f"The run folder {str(run.path)!r} already holds a run. Choose another --out, delete the folder,"
                " or pass --resume to continue an interrupted run."
            )
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        run = cls(path)
        if not run.path.is_dir():
            raise RunFolderError(f"The run folder {str(run.path)!r} does not exist. Pass the --out folder of a headstart fit run.")
        missing = [f for f in MODEL_FILES if not (run.model_dir / f).is_file()]
        if missing:
            raise RunFolderError(
                f"The run folder {str(run.path)!r} has no complete model/ (missing: {', '.join(missing)})."
                " Was the run interrupted? Continue it with `headstart fit --resume --out RUN`."
            )
        return run

    # writers -----------------------------------------------------------------------------
    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def write_history(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.history_path, buf.getvalue())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.metrics_path, metrics)

    def save_model(
        self,
        state_dict: dict[str, Any],
        *,
        task: str,
        architecture: str,
        classes: Sequence[str],
        num_outputs: int,
        preprocessing: dict[str, Any],
        provenance: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The model bundle; ``extra``: task-specific entries of model.json (a detector's spec, ...)."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        atomic_write(self.model_dir / "model.safetensors", lambda tmp: save_file(tensors, tmp))
        atomic_write_json(
            self.model_dir / "model.json",
            {"task": task, "architecture": architecture, "num_outputs": num_outputs, "num_classes": len(classes),
             **(extra or {})},
        )
        atomic_write_json(self.model_dir / "labels.json", {"classes": list(classes)})
        atomic_write_json(self.model_dir / "preprocessing.json", preprocessing)
        atomic_write_json(self.model_dir / "provenance.json", provenance)

    # readers -----------------------------------------------------------------------------
    def read_json(self, relative: str) -> Any:
        path = self.path / relative
        if not path.is_file():
            raise RunFolderError(f"The run folder {str(self.path)!r} has no {relative}.")
        return json.loads(path.read_text(encoding="utf-8"))

    def read_history(self) -> list[dict[str, Any]]:
        if not self.history_path.is_file():
            return []
        with open(self.history_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return [{k: _num(v) for k, v in row.items()} for row in rows]


def _num(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
