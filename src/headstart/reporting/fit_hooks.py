"""What ``headstart.fit`` calls to feed the report: per-image predictions of the evaluation split
(``predictions.csv``) and the report itself, written at the end of a fit."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Sequence

__all__ = ["save_predictions", "report_after_fit"]


def save_predictions(path: Path, samples: Sequence, probs, classes: Sequence[str]) -> Path:
    """``predictions.csv``: path, true, predicted, prob (of the predicted class), true_prob."""
    from headstart._io import atomic_write_text

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "true", "predicted", "prob", "true_prob"])
    for sample, row in zip(samples, probs):
        pred = int(row.argmax())
        writer.writerow([str(sample.path), classes[sample.label], classes[pred], f"{row[pred]:.6f}", f"{row[sample.label]:.6f}"])
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)


def report_after_fit(run_dir: Path, console=None) -> Path | None:
    """Write ``report.html``; a failure only warns, so the trained run is never lost to the report."""
    from headstart.reporting.build import write_report

    try:
        path = write_report(run_dir, doctor_level="quick")
    except Exception as exc:  # noqa: BLE001 -- any rendering problem must not fail a finished fit
        warnings.warn(f"Could not write the run report ({type(exc).__name__}: {exc}). The run itself is saved;"
                      f" retry with `headstart report {run_dir}`.", RuntimeWarning, stacklevel=2)
        return None
    if console is not None:
        console.print(f"report: {path}")
    return path
