"""`headstart fit --task detect` end to end on a tiny synthetic COCO dataset with a tiny timm
backbone: the run folder, predict reproducing metrics.json, exact resume, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import headstart
from tests.data.detection.conftest import square_images, write_coco

FAST = dict(task="detect", model="test_resnet", image_size=64, batch_size=4, epochs=2, device="cpu",
            overrides=["detect.fpn_channels=64", "detect.head_epochs=1"])


@pytest.fixture(scope="module")
def boxes_dataset(tmp_path_factory):
    """24 images of 64x64 with one to two coloured squares (two classes), COCO layout."""
    root = tmp_path_factory.mktemp("boxes")
    write_coco(root, square_images(24, 14, 5), ["red", "blue"])
    return root


def _fit(data, out, **kw):
    args = {**FAST, **kw}
    overrides = args.pop("overrides")
    return headstart.fit(data, out=out, verbose=False, overrides=overrides, **args)


def test_detection_run_folder_and_predict_reproduces_the_metrics(boxes_dataset, weights_env, tmp_path):
    from headstart.data.detection import load_detection_split
    from headstart.predict import load_predictor
    from headstart.tasks.detection.metrics import coco_metrics
    from headstart.tasks.detection.task import ground_truth

    out = tmp_path / "run"
    result = _fit(boxes_dataset, out)
    assert result.task == "detect"
    for rel in ("config.yaml", "split.json", "history.csv", "metrics.json", "predictions.json", "model/model.json",
                "model/model.safetensors", "plots/learning_curves.png", "plots/pr_curves.png",
                "plots/f1_confidence.png", "plots/confusion_matrix.png", "checkpoints/last.pt", "report.html"):
        assert (out / rel).is_file(), rel
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("task", "map", "map50", "map75", "map_small", "map_medium", "map_large", "ar100", "per_class",
                "n_images", "n_boxes", "conf_threshold"):
        assert key in metrics, key
    assert metrics["task"] == "detect" and metrics["split"] == "test" and metrics["n_images"] == 5
    model_json = json.loads((out / "model/model.json").read_text())
    assert model_json["task"] == "detect" and model_json["detector"]["detector"] in ("fcos", "fasterrcnn", "retinanet")
    cfg = headstart.build_config(config=out / "config.yaml")
    assert cfg.task == "detect" and cfg.detect.detector != "auto" and cfg.train.strategy == "head-ft"
    assert [r["stage"] for r in result.history] == ["head", "finetune", "finetune"]
    assert {"train_loss", "val_map", "val_map50"} <= set(result.history[0])

    page = (out / "report.html").read_text()
    assert "Evaluated images, worst first" in page and "Per class" in page and "mAP50" in page
    from headstart.reporting.detection import gallery_rows

    rows = gallery_rows(out)
    assert len(rows) == 5 and [r["errors"] for r in rows] == sorted((r["errors"] for r in rows), reverse=True)
    assert all(len(r["hits"]) + len(r["missed"]) == len(r["truth"]) for r in rows)

    # predict from the run folder alone gives the boxes that were scored
    index = load_detection_split(out / "split.json")
    test = index.splits["test"]
    preds = {p.path: p for p in load_predictor(out).predict([s.path for s in test], conf=0.0)}
    dets = [{"image_id": s.image_id, "boxes": [list(b) for b in preds[str(s.path)].boxes],
             "scores": list(preds[str(s.path)].scores),
             "labels": [index.classes.index(lab) for lab in preds[str(s.path)].labels]} for s in test]
    again = coco_metrics(ground_truth(test), dets, index.classes)
    assert again["map"] == pytest.approx(metrics["map"], abs=1e-9)
    assert again["map50"] == pytest.approx(metrics["map50"], abs=1e-9)


@pytest.mark.parametrize("detector", ["fasterrcnn", "retinanet"])
def test_anchor_detectors_get_anchors_from_the_data(detector, boxes_dataset, weights_env, tmp_path, monkeypatch):
    import timm

    from headstart.engine.callbacks import Callback

    builds, create, at_start = [], timm.create_model, []
    monkeypatch.setattr(timm, "create_model", lambda *a, **kw: builds.append(a[0]) or create(*a, **kw))

    class BuildsBeforeTraining(Callback):
        def on_stage_start(self, trainer, stage):
            at_start.append(list(builds))

    result = _fit(boxes_dataset, tmp_path / detector, epochs=1, overrides=[*FAST["overrides"], f"detect.detector={detector}"],
                  callbacks=[BuildsBeforeTraining()])
    anchors = result.metrics["anchors"]
    assert anchors["used"] == "auto" and 0 <= anchors["coverage"] <= 1
    spec = json.loads((tmp_path / detector / "model/model.json").read_text())["detector"]
    assert spec["detector"] == detector and spec["anchor_sizes"] == anchors["sizes"]
    assert at_start[0] == ["test_resnet"]  # the backbone is built once, strides for the anchors included


def test_interrupted_detection_run_resumes_to_the_same_map(boxes_dataset, weights_env, tmp_path):
    from headstart.engine.callbacks import Callback

    class Interrupt(Callback):
        def on_epoch_end(self, trainer, row):
            if row["epoch"] == 2:
                raise KeyboardInterrupt

    full = _fit(boxes_dataset, tmp_path / "full", epochs=3)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        args = {**FAST, "epochs": 3}
        overrides = args.pop("overrides")
        headstart.fit(boxes_dataset, out=out, verbose=False, overrides=overrides, callbacks=[Interrupt()], **args)
    resumed = headstart.fit(out=out, resume=True, verbose=False)
    assert [r["val_map"] for r in resumed.history] == [r["val_map"] for r in full.history]
    assert resumed.metrics["map"] == full.metrics["map"]


def test_predict_cli_for_a_detection_run(boxes_dataset, weights_env, tmp_path):
    out = tmp_path / "run"
    _fit(boxes_dataset, out, epochs=1)
    test_images = boxes_dataset / "test"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "headstart", "predict", str(out), str(test_images), *args],
                              capture_output=True, text=True, timeout=300)

    js = cli("--format", "json", "--conf", "0", "--max-det", "3", "--save-images", str(tmp_path / "drawn"))
    assert js.returncode == 0, js.stderr
    records = json.loads(js.stdout)
    assert len(records) == 5 and all(len(r["boxes"]) <= 3 for r in records)
    assert all({"box", "label", "score"} <= set(b) for r in records for b in r["boxes"])
    assert len(list((tmp_path / "drawn").glob("*.png"))) == 5
    csv_out = cli("--format", "csv", "--conf", "0").stdout.splitlines()
    assert csv_out[0] == "path,label,score,x1,y1,x2,y2,error"
    bad = cli("--conf", "2")
    assert bad.returncode == 2 and "The 'conf' parameter must be" in bad.stderr
    # classification-only and detection-only options are refused on the other kind of run
    top = cli("--top-k", "3")
    assert top.returncode == 0  # --top-k has a default, so it is accepted and unused


def test_the_task_is_detected_from_the_layout(boxes_dataset, image_folder):
    from headstart.workflows.fit import check_task

    assert check_task(headstart.build_config(boxes_dataset)).task == "detect"
    assert check_task(headstart.build_config(image_folder)).task == "classify"
    detect = check_task(headstart.build_config(boxes_dataset))
    assert detect.train.monitor == "val_map" and "detect:" in detect.to_yaml()
    assert "detect:" not in check_task(headstart.build_config(image_folder)).to_yaml()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); the headless"
                    " browser test of the report needs it")
def test_detection_report_renders_in_headless_chromium(boxes_dataset, weights_env, tmp_path):
    from PIL import Image

    out = tmp_path / "run"
    _fit(boxes_dataset, out, epochs=1)
    url = (out / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in ("headstart report", "Evaluated images, worst first", "Per class", "Precision-recall"):
        assert text in dom.stdout, text
    assert "<script" not in dom.stdout.lower()
    assert not [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2400", url],
                   capture_output=True, text=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # tables, plots and the gallery drawn
