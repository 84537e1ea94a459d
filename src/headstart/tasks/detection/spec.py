"""The detection task's declaration (plain data: importing it loads neither torch nor numpy)."""

from __future__ import annotations

from headstart.tasks.base import TaskSpec

__all__ = ["SPEC", "METRIC_DIRECTIONS", "PROGRESS_COLUMNS"]

# The validation metrics of a detection run (COCO's, on the val split after each epoch)
METRIC_DIRECTIONS: dict[str, str] = {"val_map": "max", "val_map50": "max", "val_map75": "max"}
PROGRESS_COLUMNS = (("val_map", "val_map"), ("val_map50", "val_map50"))

SPEC = TaskSpec(
    name="detect",
    title="object detection",
    metrics=METRIC_DIRECTIONS,
    default_monitor="val_map",
    objective="val_map",
    strategies=("head", "full", "head-ft"),
    search_space="headstart.tasks.detection.space:SEARCH_SPACE",
    parts={
        "load_model": "headstart.tasks.detection.export:load_run_model",
        "export_graph": "headstart.tasks.detection.export:DetectorGraph",
        "plot_history": "headstart.tasks.detection.plots:plot_learning_curves",
    },
)
