"""`headstart doctor` on a tiny detection dataset and a tiny detection run, through the CLI; the
report shows the detection findings; clear errors for what the doctor cannot examine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco


def _images(n=20, seed=0):
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        boxes = []
        for k in range(2):
            side = int(rng.integers(14, 26))
            x, y = int(rng.integers(0, 64 - side)), int(rng.integers(0, 64 - side))
            boxes.append(FixtureBox("red" if (i + k) % 2 else "blue", x, y, x + side, y + side))
        images.append(FixtureImage(f"im{i:02d}.png", boxes, split="train" if i < 14 else "val", size=(64, 64)))
    return images


def _doctor(target, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "headstart", "doctor", str(target), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_doctor_on_a_clean_detection_dataset_finds_nothing_severe(tmp_path):
    from headstart.diagnose import doctor

    root = write_coco(tmp_path / "clean", _images(), ["red", "blue"])
    findings = doctor(root, level="images")
    assert not [f for f in findings if f.severity in ("high", "medium")], findings


def test_doctor_on_a_detection_dataset_names_planted_problems(tmp_path):
    images = _images()
    # a val image with exactly the pixels and boxes of a train image: leakage across splits
    images.append(FixtureImage("copy.png", list(images[0].boxes), split="val", size=(64, 64)))
    images[1].boxes.append(FixtureBox("red", 50, 50, 80, 70))  # past the edge: clipped
    images[2].boxes.append(FixtureBox("blue", 70, 10, 90, 30))  # outside: dropped
    root = write_coco(tmp_path / "planted", images, ["red", "blue"])
    out = _doctor(root, "--level", "images", "--format", "json")
    assert out.returncode == 0, out.stderr
    found = {f["check"]: f for f in json.loads(out.stdout)}
    leak = found["split-leakage"]
    assert leak["severity"] == "high" and leak["data"]["pairs"] == [["train/im00.png", "val/copy.png"]]
    outside = found["annotations-outside"]
    assert outside["severity"] == "medium" and "im01.png" in outside["evidence"] and "im02.png" in outside["evidence"]
    assert outside["fix"] and outside["data"]["count"] == 2
    text = _doctor(root, "--level", "quick")
    assert text.returncode == 0 and "[MEDIUM] annotations-outside" in text.stdout and "split-leakage" not in text.stdout


def test_doctor_names_coordinate_format_mistakes_in_a_voc_dataset(tmp_path):
    from headstart.diagnose import doctor
    from tests.data.detection.conftest import write_voc

    images = _images()
    # [x, y, w, h] written into VOC's corner fields
    for im in images:
        im.boxes = [FixtureBox(b.cls, b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1) for b in im.boxes]
    root = write_voc(tmp_path / "voc", images, ["red", "blue"])
    checks = {f.check: f for f in doctor(root, level="quick")}
    assert checks["coordinate-format-xywh-as-xyxy"].severity == "high"
    assert "Annotations/" in checks["coordinate-format-xywh-as-xyxy"].evidence


def test_doctor_of_a_detection_dataset_checks_the_backbone_name(tmp_path):
    from headstart.diagnose import doctor
    from headstart.errors import ConfigError

    root = write_coco(tmp_path / "d", _images(4), ["red", "blue"])
    with pytest.raises(ConfigError, match=r"mobilenetv2_100"):
        doctor(root, level="quick", model="mobilenetv2_10O")


def test_doctor_says_why_no_box_of_a_yolo_dataset_survives(tmp_path):
    """YOLO labels written in pixels: every box falls outside the image, the loader finds no usable
    box, and the doctor still names the cause from the labels as written."""
    from headstart.diagnose import doctor
    from tests.data.detection.conftest import write_yolo

    root = write_yolo(tmp_path / "yolo", _images(), ["red", "blue"])
    for label in (root / "labels").rglob("*.txt"):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        label.write_text("".join(f"{c} " + " ".join(f"{float(v) * 64:g}" for v in rest) + "\n" for c, *rest in rows))
    found = {f.check: f for f in doctor(root, level="quick")}
    pixels = found["annotations-yolo-coordinates-not-fractions"]
    assert pixels.severity == "high" and "labels/train/im00.txt, line 1" in pixels.evidence
    assert "divide x_center and width by the image width" in pixels.fix
    assert found["dataset-unusable"].severity == "high" and "not one usable box" in found["dataset-unusable"].evidence


def test_doctor_of_a_detection_dataset_that_does_not_load_says_why(tmp_path):
    from headstart.diagnose import doctor
    from headstart.errors import DataError

    # every box past the image: nothing loads, the boxes as written say where they went
    images = [FixtureImage(f"im{i}.png", [FixtureBox("a", 80, 80, 90, 90)], size=(64, 64)) for i in range(4)]
    root = write_coco(tmp_path / "outside", images, ["a"])
    found = {f.check: f for f in doctor(root, level="quick")}
    assert "not one usable box" in found["dataset-unusable"].evidence
    assert "4 of 4 boxes (100%) cross the right or bottom edge" in found["boxes-past-right-bottom-edge"].evidence
    # every image missing: nothing to explain it with, so the loader's error stands
    root = write_coco(tmp_path / "missing", images, ["a"])
    for png in root.rglob("*.png"):
        png.unlink()
    with pytest.raises(DataError, match="has no usable images"):
        doctor(root, level="quick")


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory, tiny_weights_store):
    import os

    import headstart

    root = write_coco(tmp_path_factory.mktemp("data"), _images(24, seed=1), ["red", "blue"])
    out = tmp_path_factory.mktemp("runs") / "run"
    old = os.environ.get("HEADSTART_WEIGHTS_DIR")
    os.environ["HEADSTART_WEIGHTS_DIR"] = str(tiny_weights_store)
    try:
        headstart.fit(
            root,
            out=out,
            verbose=False,
            task="detect",
            model="test_resnet",
            image_size=64,
            batch_size=4,
            epochs=2,
            device="cpu",
            overrides=["detect.fpn_channels=64", "detect.head_epochs=1"],
        )
    finally:
        if old is None:
            os.environ.pop("HEADSTART_WEIGHTS_DIR")
        else:
            os.environ["HEADSTART_WEIGHTS_DIR"] = old
    return out


def test_doctor_on_a_detection_run_reads_curves_threshold_and_model(detection_run, tmp_path, weights_env):
    run = shutil.copytree(detection_run, tmp_path / "run")
    # an overfitting curve: val mAP peaks early and falls while the train loss keeps falling
    rows = ["epoch,stage,train_loss,val_map,val_map50"]
    for e, (loss, vmap) in enumerate(zip([2.0, 1.5, 1.0, 0.7, 0.5, 0.4], [0.3, 0.5, 0.4, 0.35, 0.3, 0.25])):
        rows.append(f"{e + 1},finetune,{loss},{vmap},{vmap + 0.2}")
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    out = _doctor(run, "--format", "json", "--level", "full")
    assert out.returncode == 0, out.stderr
    findings = json.loads(out.stdout)
    found = {f["check"]: f for f in findings}
    assert (
        found["detection-overfitting"]["severity"] == "high"
        and "epoch 2 of 6" in found["detection-overfitting"]["evidence"]
    )
    assert all(f["severity"] in ("high", "medium", "low", "info") and f["evidence"] and f["fix"] for f in findings)
    assert "model-checks-skipped" not in found  # a run folder has a detector for the label checks

    # the report shows the detection findings as it does for classification
    from headstart.reporting.build import build_report

    page = build_report(run)
    assert "Doctor findings" in page and "detection-overfitting" in page


def test_doctor_label_checks_use_the_runs_detector(detection_run, weights_env):
    """The run's own detections, compared with the annotations: with the annotated boxes of the val
    split removed, every confident detection there is a 'missing' box."""
    from headstart.data.detection import load_detection_split
    from headstart.diagnose import detection_labels as dl

    index = load_detection_split(detection_run / "split.json")
    samples = index.splits["train"] + index.splits["val"]
    dets = dl.detections_for(detection_run, [s.path for s in samples])
    assert len(dets) == len(samples)
    images = [dl.ImageBoxes(s.path.name, "x", np.zeros((0, 4)), np.zeros(0, int), *d) for s, d in zip(samples, dets)]
    suspects = dl.find_suspects(images, confident=0.0)
    assert len(suspects) == sum(len(d[2]) for d in dets) and all(s.kind == "missing" for s in suspects)


def test_doctor_of_a_detection_run_without_split_says_why(detection_run, tmp_path):
    from headstart.diagnose import doctor
    from headstart.errors import RunFolderError

    run = shutil.copytree(detection_run, tmp_path / "run")
    (run / "split.json").unlink()
    with pytest.raises(RunFolderError, match="has no split.json"):
        doctor(run, level="quick")


def test_doctor_on_a_detection_run_compares_the_default_conf_with_the_f1_best(detection_run, tmp_path):
    """predictions.json: every evaluated box found at 0.9 plus one false box per image at 0.3; the
    F1-best threshold is 0.9, a default conf of 0.2 keeps the false boxes."""
    from headstart.data.detection import load_detection_split
    from headstart.diagnose import doctor

    run = shutil.copytree(detection_run, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    index = load_detection_split(run / "split.json")
    preds = []
    for s in index.splits[metrics["split"]]:
        for (x1, y1, x2, y2), label in zip(s.boxes, s.labels):
            preds.append(
                {"image_id": s.image_id, "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.9}
            )
        preds.append({"image_id": s.image_id, "category_id": 1, "bbox": [0, 0, 3, 3], "score": 0.3})
    (run / "predictions.json").write_text(json.dumps(preds))
    metrics.update(conf_threshold=0.9, per_class={})
    (run / "metrics.json").write_text(json.dumps(metrics))
    model = json.loads((run / "model" / "model.json").read_text())
    model["conf"] = 0.2
    (run / "model" / "model.json").write_text(json.dumps(model))
    found = {f.check: f for f in doctor(run, level="quick")}
    f = found["poor-confidence-threshold"]
    assert f.severity == "high" and "too low, false boxes are kept" in f.evidence and "--conf 0.90" in f.fix
    n_boxes, n_images = sum(len(s.boxes) for s in index.splits[metrics["split"]]), len(index.splits[metrics["split"]])
    assert f.data["f1_best"] == pytest.approx(1.0)
    assert f.data["f1_used"] == pytest.approx(2 * n_boxes / (2 * n_boxes + n_images))  # 2TP / (2TP + FP + FN)
