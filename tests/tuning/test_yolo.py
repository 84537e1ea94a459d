"""`headstart tune` with a YOLO detector (the yolo extra): Ultralytics' trainer reports each epoch's
val mAP to Optuna through headstart's trial callbacks and stops when pruned; trial 0 is the config
`headstart fit --detector yolov8n` resolves; the YOLO search space leaves out what only torchvision's
detectors read."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

import headstart
from headstart.config import build_config, load_yaml
from tests.tasks.detection.yolo_helpers import write_squares

pytest.importorskip("optuna")
# find_spec, not importorskip: importing Ultralytics at collection would patch PIL.Image.open for
# every later test in the process (headstart undoes it only when it imports Ultralytics itself)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                                reason="needs the yolo extra: pip install 'headstart[yolo]'")


@pytest.mark.slow  # three YOLO epochs in two trials: 11 s on one idle core, more on a busy machine
def test_a_yolo_study_reports_each_epoch_and_prunes(tmp_path, monkeypatch):
    import optuna

    from headstart.tuning.study import read_settings

    squares = write_squares(tmp_path / "squares")
    seen = []

    def prune(self, study, trial):  # the verdict is forced: what is tested is that YOLO epochs report and stop
        seen.append(trial.number)
        return trial.number == 1

    monkeypatch.setattr(optuna.pruners.MedianPruner, "prune", prune)
    out = tmp_path / "study"
    result = headstart.tune(squares, out=out, detector="yolov8n", image_size=64, epochs=2, device="cpu", trials=2,
                            sampler="random", final=False, verbose=False)
    settings = json.loads((out / "tune.json").read_text())
    # from its YAML everything trains: no strategy to search; no backbone LR ratio, FPN or anchors for YOLO
    assert set(settings["space"]) == {"lr", "augment"}
    s = read_settings(out)
    trials = optuna.load_study(study_name=s["study"], storage=s["storage"]).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"] and result.counts["pruned"] == 1
    assert seen == [0, 0, 1]  # asked after every epoch; trial 1 stopped at its first
    # trial 0 is the config `headstart fit --detector yolov8n` resolves (Ultralytics' recipe)
    assert trials[0].user_attrs["default"] is True and trials[0].params == {"lr": 1e-3, "augment": "medium"}
    ran = build_config(config=load_yaml(out / "trials" / "trial-0000" / "config.yaml"))
    assert ran.detect.detector == "yolov8n" and ran.train.monitor == "val_map" and ran.yolo["resolved"]["lr0"] == 1e-3
    assert ran.train.weight_decay == ran.yolo["resolved"]["weight_decay"] == 5e-4  # Ultralytics' decay in every trial
    with open(out / "trials" / "trial-0000" / "history.csv") as f:
        maps = [float(r["val_map"]) for r in csv.DictReader(f)]
    assert [trials[0].intermediate_values[k] for k in sorted(trials[0].intermediate_values)] == pytest.approx(maps)
    assert len(maps) == 2 and trials[0].value == pytest.approx(max(maps))
    assert list(trials[1].intermediate_values) == [1]
    assert not (out / "trials" / "trial-0001" / "model").exists()
    assert not (out / "trials" / "trial-0000" / "checkpoints").exists()  # a trial keeps no checkpoint
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert "test_map" in rows[0] and rows[0]["default"] == "True"
