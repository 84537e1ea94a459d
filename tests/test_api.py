import json

import pytest

import headstart
from headstart.errors import ConfigError, RunFolderError

FAST = dict(model="test_resnet", image_size=32, batch_size=8, epochs=2, probe_epochs=3, device="cpu")


def test_fit_lp_ft_writes_a_complete_run_folder(image_folder, weights_env, tmp_path):
    out = tmp_path / "run"
    result = headstart.fit(image_folder, strategy="lp-ft", out=out, verbose=False, **FAST)
    for rel in ("config.yaml", "split.json", "history.csv", "metrics.json", "plots/learning_curves.png",
                "plots/confusion_matrix.png", "model/model.safetensors", "model/labels.json",
                "model/preprocessing.json", "model/provenance.json", "checkpoints/last.pt"):
        assert (out / rel).is_file(), rel
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "n_test", "per_class", "confusion_matrix", "classes"):
        assert key in metrics
    assert metrics["classes"] == ["cat", "dog", "fox"]
    assert [r["stage"] for r in result.history] == ["probe"] * 3 + ["finetune"] * 2
    prov = json.loads((out / "model/provenance.json").read_text())
    assert prov["weights"]["source"] == "store" and len(prov["weights"]["sha256"]) == 64
    assert prov["dataset"]["fingerprint"]
    # config.yaml is fully resolved: what really ran
    cfg = headstart.build_config(config=out / "config.yaml")
    assert cfg.model.name == "test_resnet" and cfg.train.strategy == "lp-ft" and cfg.train.lr is not None
    assert cfg.augment.preset != "auto"
    # the run records its task, and predict / export / report read it from there
    assert cfg.task == "classify" and (out / "config.yaml").read_text().startswith("task: classify")
    assert json.loads((out / "model/model.json").read_text())["task"] == "classify"
    assert metrics["task"] == "classify"


def test_fit_learns_and_predict_matches_loaded_run(image_folder, weights_env, tmp_path):
    result = headstart.fit(image_folder, strategy="full", out=tmp_path / "r", verbose=False, lr=3e-3,
                           **{**FAST, "epochs": 6})
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    some = sorted((image_folder / "dog").iterdir())[:3]
    direct = result.predict(some, top_k=2)
    loaded = headstart.load(tmp_path / "r").predict(some, top_k=2)
    assert [p.labels for p in direct] == [p.labels for p in loaded]
    for a, b in zip(direct, loaded):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)


def test_binary_linear_probe(binary_folder, weights_env, tmp_path):
    result = headstart.fit(binary_folder, strategy="linear-probe", out=tmp_path / "b", verbose=False, **FAST)
    meta = json.loads((tmp_path / "b" / "model" / "model.json").read_text())
    assert meta["num_outputs"] == 1 and meta["num_classes"] == 2
    assert all(r["stage"] == "probe" for r in result.history)
    preds = result.predict(binary_folder / "yes", top_k=2)
    assert len(preds) == 16 and all(abs(sum(p.probs) - 1) < 1e-5 for p in preds)


def test_fit_is_deterministic(image_folder, weights_env, tmp_path):
    a = headstart.fit(image_folder, strategy="full", out=tmp_path / "a", verbose=False, **FAST)
    b = headstart.fit(image_folder, strategy="full", out=tmp_path / "b", verbose=False, **FAST)
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in h]
    assert strip(a.history) == strip(b.history)
    assert a.metrics["confusion_matrix"] == b.metrics["confusion_matrix"]


def test_random_init_needs_no_weights(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(tmp_path / "empty"))
    result = headstart.fit(image_folder, pretrained=False, out=tmp_path / "x", verbose=False, **FAST)
    assert result.config.train.strategy == "full"


def test_fit_errors(image_folder, weights_env, tmp_path):
    with pytest.raises(ConfigError, match=r"The 'data.path' parameter is required"):
        headstart.fit(verbose=False, **FAST)
    with pytest.raises(ConfigError, match=r"Unknown parameter 'epoch'. Did you mean 'epochs'"):
        headstart.fit(image_folder, epoch=3, verbose=False)
    headstart.fit(image_folder, strategy="linear-probe", out=tmp_path / "done", verbose=False, **FAST)
    with pytest.raises(RunFolderError, match=r"already holds a run. Choose another --out"):
        headstart.fit(image_folder, strategy="linear-probe", out=tmp_path / "done", verbose=False, **FAST)
    with pytest.raises(RunFolderError, match=r"Cannot resume: .* has no config.yaml"):
        headstart.fit(resume=True, out=tmp_path / "nothing", verbose=False)
    with pytest.raises(RunFolderError, match=r"does not exist"):
        headstart.load(tmp_path / "nope")


def test_missing_weights_error_names_the_import_command(image_folder, tmp_path, monkeypatch):
    from headstart.errors import WeightsNotFoundError

    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(WeightsNotFoundError, match=r"headstart weights import FILE --model test_resnet"):
        headstart.fit(image_folder, out=tmp_path / "w", verbose=False, **FAST)


@pytest.mark.parametrize("kwargs, match", [
    ({"task": "clasify"}, r"The 'task' parameter must be one of \{'classify', 'detect'\}. Got 'clasify'. Did you mean 'classify'"),
    ({"monitor": "val_f1"}, r"The 'train.monitor' parameter must be one of the 'classify' task's validation metrics"
                            r" \{'val_accuracy', 'val_balanced_accuracy', 'val_loss', 'val_macro_f1'\}. Got 'val_f1'"),
])
def test_task_and_monitor_are_checked_before_any_work(kwargs, match, tmp_path):
    # the dataset does not even exist: the config is refused first
    with pytest.raises(ConfigError, match=match):
        headstart.fit(tmp_path / "no-such-data", out=tmp_path / "r", verbose=False, **kwargs)
    assert not (tmp_path / "r").exists()


def test_monitor_help_lists_the_task_metrics():
    """The --monitor help is text in config.py (core cannot import the tasks): keep it in step."""
    from headstart.config import TrainConfig
    from headstart.tasks import get_task

    help_text = TrainConfig.model_fields["monitor"].json_schema_extra["cli"]["help"]
    for metric in get_task("classify").metrics:
        assert metric in help_text


def test_python_resume_refuses_arguments_it_would_ignore(image_folder, weights_env, tmp_path):
    out = tmp_path / "r"
    headstart.fit(image_folder, out=out, verbose=False, **{**FAST, "epochs": 1, "strategy": "full"})
    (out / "metrics.json").unlink()  # as if interrupted after the last checkpoint
    with pytest.raises(ConfigError, match=r"The 'resume' parameter continues the run in .* with its saved config.yaml,"
                                          r" so these arguments would be ignored: lr=0.5"):
        headstart.fit(out=out, resume=True, lr=0.5, verbose=False)


def test_fit_chooses_the_input_size_from_the_images_and_records_it(image_folder, weights_env, tmp_path, capsys):
    # 40 px images, test_resnet pretrained at 160 px: 2 x 40 = 80, raised to the floor, 96
    out = tmp_path / "run"
    fast = {**FAST, "epochs": 1, "probe_epochs": 1}
    del fast["image_size"]
    result = headstart.fit(image_folder, strategy="full", out=out, verbose=True, **fast)
    assert result.config.model.image_size == 96
    assert headstart.build_config(config=out / "config.yaml").model.image_size == 96
    assert json.loads((out / "model/preprocessing.json").read_text())["input_size"] == 96
    printed = capsys.readouterr().err
    assert "input size auto: 96px, 2x the images' median short side 40px, at least 96px" in printed
