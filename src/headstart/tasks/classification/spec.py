"""The classification task's declaration (plain data: importing it loads neither torch nor numpy)."""

from __future__ import annotations

from headstart.tasks.base import TaskSpec

__all__ = ["SPEC", "METRIC_DIRECTIONS", "PROGRESS_COLUMNS"]

# The validation metrics of a classification run (history.csv's val_* columns) and which way each
# is better: early stopping, the best checkpoint, --monitor, tune's objective and its pruner read
# this one table.
METRIC_DIRECTIONS: dict[str, str] = {
    "val_loss": "min",
    "val_accuracy": "max",
    "val_balanced_accuracy": "max",
    "val_macro_f1": "max",
}
# (history key, label) on each epoch's progress line
PROGRESS_COLUMNS = (("train_accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc"),
                    ("val_balanced_accuracy", "val_bal_acc"))

SPEC = TaskSpec(
    name="classify",
    title="image classification",
    metrics=METRIC_DIRECTIONS,
    default_monitor="val_loss",
    objective="val_accuracy",
    strategies=("linear-probe", "full", "lp-ft"),
    search_space="headstart.tasks.classification.space:SEARCH_SPACE",
    parts={
        "load_model": "headstart.tasks.classification.export:load_run_model",
        "export_wrapper": "headstart.tasks.classification.export:probability_model",
        "plot_history": "headstart.tasks.classification.plots:plot_learning_curves",
    },
)
