"""`headstart tune` on a detection dataset: val mAP as the objective, the detection search space,
the default config as trial 0, pruning on each epoch's val_map, outputs, `fit(tune=...)`, the CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

import headstart
from headstart.config import build_config, load_yaml
from headstart.errors import ConfigError
from headstart.tuning.space import parse_space
from tests.data.detection.conftest import square_images, write_coco

pytest.importorskip("optuna")

# every trial: tiny random-init-sized backbone (the tiny weights store), 64 px, fcos, head-ft = 1 head + 1 epoch
DET = dict(model="test_resnet", image_size=64, batch_size=4, epochs=1, device="cpu", detector="fcos",
           overrides=["detect.fpn_channels=64"])
DET_FLAGS = ["--model", "test_resnet", "--image-size", "64", "--batch-size", "4", "--epochs", "1", "--device", "cpu",
             "--detector", "fcos", "detect.fpn_channels=64"]


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    """24 images of 64x64 with one or two coloured squares (two classes), COCO layout, splits given."""
    root = tmp_path_factory.mktemp("boxes")
    write_coco(root, square_images(24, 14, 5), ["red", "blue"])
    return root


def _tune(data, out, **kw):
    args = {**DET, **kw}
    overrides = args.pop("overrides")
    return headstart.tune(data, out=out, verbose=False, overrides=overrides, **args)


def _load(run_dir):
    import optuna

    from headstart.tuning.study import read_settings

    settings = read_settings(run_dir)
    return optuna.load_study(study_name=settings["study"], storage=settings["storage"])


def _history_map(run_dir, key="val_map"):
    with open(run_dir / "history.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f)]


def test_detection_study_trial0_is_the_default_config_and_outputs(boxes, weights_env, tmp_path):
    from headstart.data.detection import load_detection_dataset
    from headstart.tasks.detection.choices import resolve_choices
    from headstart.workflows.fit import resolve_task

    out = tmp_path / "study"
    result = _tune(boxes, out, trials=2, sampler="random")
    settings = json.loads((out / "tune.json").read_text())
    assert settings["task"] == "detect" and settings["metric"] == "val_map" and result.metric == "val_map"
    # the default detection space, less what DET fixes (detector, input size, epochs); head epochs stay headstart's
    assert set(settings["space"]) == {"lr", "backbone_lr_ratio", "augment", "strategy", "head_epochs"}
    assert settings["space"]["head_epochs"] == 1 and settings["space"]["strategy"] == {"choices": ["head", "head-ft", "full"]}

    trials = _load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    # trial 0 is headstart's own choice for this dataset: the config that `headstart fit` resolves
    assert trials[0].user_attrs["default"] is True
    assert trials[0].params == {"lr": 5e-4, "backbone_lr_ratio": 0.3, "augment": "light", "strategy": "head-ft"}
    cfg = resolve_task(build_config(boxes, overrides=DET["overrides"], **{k: v for k, v in DET.items() if k != "overrides"}))
    index = load_detection_dataset(boxes)
    expected, _ = resolve_choices(cfg, index.splits["train"], device_type="cpu")
    ran = build_config(config=load_yaml(out / "trials" / "trial-0000" / "config.yaml"))
    assert ran.detect == expected.detect and ran.augment == expected.augment
    assert ran.train.model_copy(update={"monitor": "auto"}) == expected.train and ran.train.monitor == "val_map"
    assert ran.model.image_size == expected.model.image_size == 64

    # the pruner saw each epoch's val_map (step = epochs so far), and the trial's value is the best of them
    for t in trials:
        maps = _history_map(out / "trials" / f"trial-{t.number:04d}")
        assert [t.intermediate_values[step] for step in sorted(t.intermediate_values)] == pytest.approx(maps)
        assert t.value == pytest.approx(max(maps))

    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["default"] for r in rows] == ["True", "False"] and "test_map" in rows[0] and "test_accuracy" not in rows[0]
    assert {"param_lr", "param_backbone_lr_ratio", "param_augment", "param_strategy"} <= set(rows[0])
    best_cfg = build_config(config=load_yaml(out / "best.yaml"))
    assert best_cfg.task == "detect" and best_cfg.train.monitor == "val_map" and best_cfg.detect.detector == "fcos"
    assert best_cfg.train.lr == pytest.approx(result.best_params["lr"])
    assert best_cfg.detect.backbone_lr_ratio == pytest.approx(result.best_params["backbone_lr_ratio"])
    # the final run folder is the best config's
    model_json = json.loads((out / "best" / "model" / "model.json").read_text())
    assert model_json["task"] == "detect" and result.final.task == "detect"
    best = [t for t in trials if t.number == result.best_trial][0]
    assert result.final.metrics["map"] == pytest.approx(best.user_attrs["test_map"])


def test_a_pruned_detection_trial_stops_after_its_first_epoch(boxes, weights_env, tmp_path, monkeypatch):
    import optuna

    # the pruner's verdict is forced (mAP of a 1-epoch tiny detector says nothing); what is tested is that
    # a detection fit reports val_map each epoch and stops when told
    seen = []

    def prune(self, study, trial):
        seen.append((trial.number, dict(trial.intermediate_values)))
        return trial.number == 1

    monkeypatch.setattr(optuna.pruners.MedianPruner, "prune", prune)
    out = tmp_path / "study"
    _tune(boxes, out, trials=1, sampler="random", space={"lr": {"low": 1e-4, "high": 2e-3, "log": True}}, epochs=2,
          final=False)
    # a detection study resumes from its tune.json (its space read with the detection names)
    result = headstart.tune(resume=out, trials=2, final=False, verbose=False)
    trials = _load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"] and result.counts["pruned"] == 1
    assert len(trials[0].intermediate_values) == 3  # head-ft: 1 head epoch + 2
    assert list(trials[1].intermediate_values) == [1] and 0.0 <= trials[1].intermediate_values[1] <= 1.0
    assert [n for n, _ in seen] == [0, 0, 0, 1]  # asked after every epoch; trial 1 stopped at its first
    assert not (out / "trials" / "trial-0001" / "model").exists()


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"detector": ["fcos", "yolo"]}, r"'detect\.detector' parameter must be one of \{'fasterrcnn', 'fcos', "
                                         r"'retinanet', 'yolov8n', .*'yolo11x'\}\. Got 'yolo'"),
        ({"detectr": ["fcos"]}, r"Unknown search-space parameter 'detectr' for task 'detect'\. Did you mean 'detector'"),
        ({"strategy": ["head", "lp-ft"]}, r"'train\.strategy' parameter must be one of .*'head-ft'.*Got 'lp-ft'"),
        ({"backbone_lr_ratio": {"low": 0.1, "high": 2.0}}, r"backbone_lr_ratio"),
        ({"image_size": {"low": 64.5, "high": 128}}, r"'image_size' needs integer bounds"),
        ({"head_epochs": {"low": 1.0, "high": 3}}, r"'head_epochs' needs integer bounds"),
        ({"fpn_channels": [64, 100]}, r"fpn_channels"),
        ({"augment": ["light", "heavy"]}, r"preset"),
        ({"augment_strength": {"low": 0.5, "high": 1.5}}, r"Unknown search-space parameter 'augment_strength' for task "
                                                          r"'detect'"),
    ],
)
def test_detection_space_errors_name_the_value_and_the_fix(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_space(spec, task="detect")


def test_detection_space_names_and_float_ranges():
    space = parse_space({"detector": ["fcos", "retinanet"], "backbone_lr_ratio": {"low": 0.1, "high": 1},
                         "weight_decay": {"low": 0, "high": 1}, "epochs": {"low": 2, "high": 6}, "detect.max_det": 50},
                        task="detect")
    assert space.params["detector"].choices == ("fcos", "retinanet")
    assert space.params["backbone_lr_ratio"].kind == "float" and space.params["weight_decay"].kind == "float"
    assert space.params["epochs"].kind == "int"
    assert space.fixed == {"detect.max_det": 50}
    # a classification space does not know detection names
    with pytest.raises(ConfigError, match=r"Unknown search-space parameter 'detector'\. Valid names: lr"):
        parse_space({"detector": ["fcos"]})


def test_detection_study_checks_space_and_metric_before_training(boxes, weights_env, tmp_path):
    with pytest.raises(ConfigError, match=r"'metric' parameter must be one of \{'val_map', 'val_map50', 'val_map75'\}"
                                          r"\. Got 'val_accuracy'"):
        _tune(boxes, tmp_path / "a", metric="val_accuracy", trials=1)
    with pytest.raises(ConfigError, match=r"'train\.strategy' parameter must be one of .*Got 'lp-ft'"):
        _tune(boxes, tmp_path / "b", space={"strategy": ["lp-ft"]}, trials=1)
    # everything the default detection space searches is set: nothing left to search
    with pytest.raises(ConfigError, match=r"The default search space \(values set in the config are not searched\) "
                                          r"searches nothing"):
        _tune(boxes, tmp_path / "c", lr=1e-3, strategy="full", augment="medium", trials=1,
              overrides=[*DET["overrides"], "detect.backbone_lr_ratio=0.5", "detect.head_epochs=1"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_fit_tune_trains_the_best_detection_config(boxes, weights_env, tmp_path):
    out = tmp_path / "run"
    args = {**DET}
    overrides = args.pop("overrides")
    result = headstart.fit(boxes, tune=1, out=out, overrides=overrides, verbose=False, **args)
    assert result.task == "detect" and "map" in result.metrics
    assert json.loads((out / "model" / "model.json").read_text())["task"] == "detect"
    assert json.loads((out / "tune" / "tune.json").read_text())["task"] == "detect"
    assert (out / "tune" / "trials.csv").is_file() and (out / "tune" / "best.yaml").is_file()


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_tunes_a_detection_dataset(boxes, weights_env, tmp_path):
    out = tmp_path / "study"
    res = _cli("tune", boxes, "--trials", "1", "--out", out, "--metric", "val_map50", "--quiet", *DET_FLAGS)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out)
    settings = json.loads((out / "tune.json").read_text())
    assert settings["task"] == "detect" and settings["metric"] == "val_map50"
    trials = _load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] and trials[0].user_attrs["default"] is True
    assert trials[0].value == pytest.approx(max(_history_map(out / "trials" / "trial-0000", "val_map50")))
    assert (out / "best" / "model" / "model.safetensors").is_file()
    res = _cli("tune", boxes, "--metric", "val_acc", "--out", tmp_path / "bad", *DET_FLAGS)
    assert res.returncode != 0 and "'metric' parameter must be one of {'val_map', 'val_map50', 'val_map75'}" in res.stderr


@pytest.mark.slow  # two worker processes, each importing torch: ~20 s of CPU, about a minute on a busy machine
def test_two_worker_processes_share_a_detection_study(boxes, weights_env, tmp_path):
    out = tmp_path / "study"
    result = _tune(boxes, out, trials=2, sampler="random", workers=2, final=False,
                   space={"lr": {"low": 1e-4, "high": 2e-3, "log": True}})
    trials = _load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"] and result.counts["done"] == 2
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # one trial in each worker process
    assert all(len(t.intermediate_values) == 2 for t in trials)  # val_map reported from the workers too
