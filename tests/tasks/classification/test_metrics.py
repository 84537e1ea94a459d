import numpy as np
import pytest

from headstart.tasks.classification.metrics import classification_metrics
from headstart.tasks.classification.plots import plot_confusion_matrix, plot_learning_curves


def test_metrics_hand_checked():
    y = [0, 0, 1, 2]
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    m = classification_metrics(y, probs, ["a", "b", "c"], top_k=2)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert m["top_k"] == 2 and m["top_k_accuracy"] == 1.0
    assert classification_metrics(y, probs, ["a", "b", "c"], top_k=3)["top_k_accuracy"] is None
    top1 = classification_metrics([0, 0], np.array([[0.4, 0.5, 0.1], [0.1, 0.2, 0.7]]), ["a", "b", "c"], top_k=2)
    assert top1["top_k_accuracy"] == 0.5
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["n_test"] == 4 and m["classes"] == ["a", "b", "c"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "n_test", "per_class", "confusion_matrix", "classes"):
        assert key in m


def test_plots_written(tmp_path):
    hist = [
        {"epoch": 1, "stage": "probe", "train_loss": 1.0, "val_loss": 0.9, "train_accuracy": 0.5, "val_accuracy": 0.6, "val_balanced_accuracy": 0.6},
        {"epoch": 2, "stage": "finetune", "train_loss": 0.5, "val_loss": 0.6, "train_accuracy": 0.8, "val_accuracy": 0.7, "val_balanced_accuracy": 0.7},
    ]
    a = plot_learning_curves(hist, tmp_path / "p" / "lc.png")
    b = plot_confusion_matrix([[3, 1], [0, 4]], ["x", "<script>"], tmp_path / "cm.png")
    for f in (a, b):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 1000


def test_a_class_absent_from_the_split_scores_the_same_in_val_and_test():
    """The same predictions on a split without class 'c' gave val macro-F1 1.0 and test 0.667 when
    the per-epoch metric called f1_score without labels=; one implementation now serves both."""
    from headstart.tasks.classification.metrics import val_metrics

    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    test = classification_metrics(y, probs, ["a", "b", "c"], top_k=1)
    val = val_metrics(probs, y, 3)
    assert val["val_macro_f1"] == test["macro_f1"] == pytest.approx(2 / 3)
    assert val["val_accuracy"] == test["accuracy"] == 1.0
    assert val["val_balanced_accuracy"] == test["balanced_accuracy"]
