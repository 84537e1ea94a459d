"""The end of every detection fit, whichever backend trained the detector (torchvision's through
headstart's engine in :mod:`~headstart.workflows.fit_detection`, Ultralytics' in
:mod:`~headstart.workflows.fit_yolo`): history.csv, metrics.json, predictions.json (COCO results of
the evaluated split), the plots, the model bundle, the summary line and the report. One function, so
a YOLO run folder cannot drift from a torchvision one."""

from __future__ import annotations

from typing import Any, Mapping

from headstart.config import FitConfig
from headstart.run_folder import RunFolder
from headstart.workflows.result import FitResult

__all__ = ["save_detection_run"]


def save_detection_run(
    cfg: FitConfig,
    index,
    run: RunFolder,
    *,
    history: list[dict[str, Any]],
    metrics: dict[str, Any],
    detections,
    state_dict: Mapping[str, Any],
    architecture: str,
    num_outputs: int,
    preprocessing: dict[str, Any],
    weights,
    model_extra: Mapping[str, Any],
    console,
    summary_note: str = "",
) -> FitResult:
    """Write the run folder of a finished detection fit; ``metrics`` come from headstart's COCO
    evaluation of ``detections`` on ``metrics['split']``; ``model_extra`` goes into model.json beside
    the default ``conf`` and ``max_det`` (the detector's spec, a backend's own entries);
    ``summary_note`` is appended to the printed summary."""
    from headstart._io import atomic_write_json
    from headstart._version import __version__
    from headstart.tasks.detection.matching import pr_curves
    from headstart.tasks.detection.metrics import coco_results, confusion_matrix
    from headstart.tasks.detection.plots import (
        plot_confusion_matrix,
        plot_f1_confidence,
        plot_learning_curves,
        plot_pr_curves,
    )
    from headstart.tasks.detection.task import ground_truth
    from headstart.workflows.provenance import provenance

    split = metrics["split"]
    truth = ground_truth(index.splits[split])
    run.write_history(history)
    run.write_metrics(metrics)
    atomic_write_json(run.path / "predictions.json", coco_results(detections, index.classes))
    curves = pr_curves(truth, detections, index.classes)
    plot_learning_curves(history, run.plots_dir / "learning_curves.png")
    plot_pr_curves(curves, run.plots_dir / "pr_curves.png")
    plot_f1_confidence(curves, run.plots_dir / "f1_confidence.png")
    plot_confusion_matrix(
        confusion_matrix(truth, detections, index.classes), index.classes, run.plots_dir / "confusion_matrix.png"
    )
    conf = cfg.detect.conf if cfg.detect.conf is not None else metrics.get("conf_threshold")
    run.save_model(
        dict(state_dict),
        task="detect",
        architecture=architecture,
        classes=index.classes,
        num_outputs=num_outputs,
        preprocessing=preprocessing,
        provenance=provenance(__version__, cfg, index, weights),
        extra={**model_extra, "conf": conf, "max_det": cfg.detect.max_det},
    )
    from headstart.reporting.fit_hooks import report_after_fit

    console.print(
        f"{split}: mAP {metrics['map']:.4f}, mAP50 {metrics['map50']:.4f}, mAP75 {metrics['map75']:.4f} on"
        f" {metrics['n_images']} images ({metrics['n_boxes']} boxes){summary_note}. Run folder: {run.path}"
    )
    report_after_fit(run.path, console)
    return FitResult(run.path, cfg, history, metrics, list(index.classes), None, task="detect")
