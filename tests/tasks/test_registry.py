"""The task registry, and the commands that dispatch on a run folder's task."""

import json

import pytest

from headstart.errors import ConfigError, RunFolderError
from headstart.tasks import TASKS, TaskSpec, UnsupportedForTask, get_task, task_of_run


def test_get_task_suggests_close_names():
    assert get_task("classify").metrics["val_loss"] == "min"
    with pytest.raises(ConfigError, match=r"The 'task' parameter must be one of \{'classify', 'detect'\}. Got 'clasify'."
                                          r" Did you mean 'classify'\?"):
        get_task("clasify")


def test_every_task_declares_directions_and_a_known_monitor():
    for spec in TASKS.values():
        assert set(spec.metrics.values()) <= {"min", "max"}
        assert spec.default_monitor in spec.metrics and spec.objective in spec.metrics


def _run_folder(tmp_path, task=None):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    meta = {"architecture": "test_resnet", "num_outputs": 3, "num_classes": 3}
    if task is not None:
        meta["task"] = task
    (run / "model" / "model.json").write_text(json.dumps(meta))
    for name, data in (("labels.json", {"classes": ["a", "b", "c"]}), ("preprocessing.json", {})):
        (run / "model" / name).write_text(json.dumps(data))
    (run / "model" / "model.safetensors").write_bytes(b"")
    (run / "config.yaml").write_text("data:\n  path: x\n")
    return run


def test_a_run_from_before_tasks_is_classification(tmp_path):
    assert task_of_run(_run_folder(tmp_path)).name == "classify"
    assert task_of_run(_run_folder(tmp_path / "b", task="classify")).name == "classify"


def test_unknown_and_unreadable_tasks_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"'task' parameter must be one of .* Got 'segment'"):
        task_of_run(_run_folder(tmp_path, task="segment"))
    run = _run_folder(tmp_path / "b")
    (run / "model" / "model.json").write_text("{not json")
    with pytest.raises(RunFolderError, match=r"Cannot read the task of the run folder .*run"):
        task_of_run(run)


@pytest.fixture
def bare_task(monkeypatch):
    """A registered task that provides no command yet, as a new task does while it is being built."""
    spec = TaskSpec(name="bare", title="bare things", metrics={"val_loss": "min"}, default_monitor="val_loss",
                    objective="val_loss")
    monkeypatch.setitem(TASKS, "bare", spec)
    return spec


def test_predict_export_report_doctor_dispatch_on_the_task(tmp_path, bare_task):
    from headstart.diagnose import doctor
    from headstart.export import export_model
    from headstart.predict import load_predictor
    from headstart.reporting.build import write_report

    run = _run_folder(tmp_path, task="bare")
    with pytest.raises(UnsupportedForTask, match=r"prediction from a run folder is not available for bare things runs"
                                                 r" \(task 'bare'\)"):
        load_predictor(run)
    with pytest.raises(UnsupportedForTask, match=r"`headstart export --format onnx` is not available for bare things"):
        export_model(run, "onnx")
    with pytest.raises(UnsupportedForTask, match=r"`headstart report` has no page for bare things runs"):
        write_report(run)
    with pytest.raises(UnsupportedForTask, match=r"`headstart doctor` has no run checks for bare things runs"):
        doctor(run, level="quick")


def test_detection_datasets_reach_doctor_and_rank(tmp_path):
    """rank and doctor have detection parts now (tests/select/test_rank_detection.py,
    tests/diagnose/test_detection_doctor.py): neither refuses a detection dataset."""
    from headstart.diagnose import doctor
    from tests.data.detection.conftest import standard_images, write_coco

    data = write_coco(tmp_path / "coco", standard_images(), ["cat", "dog", "bird"]) or tmp_path / "coco"
    assert all(f.severity in ("high", "medium", "low", "info") for f in doctor(data, level="quick"))
