"""`headstart fit --detector yolov8n` end to end through the CLI, with every network call of the
subprocess blocked and logged: the run folder is the torchvision detectors' (metrics.json from
headstart's COCO evaluation, predictions.json, plots, report, model bundle with no pickle), predict
reproduces the evaluated detections; the missing extra and the .pt pickle get clear messages;
`detector: auto` takes an imported YOLO; engine callbacks (tune's) see every epoch; `--resume`
continues from headstart's own checkpoint to the uninterrupted run's weights."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from tests.tasks.detection.yolo_helpers import BLOCK_NETWORK, BLOCK_ULTRALYTICS, cli, write_squares

# find_spec, not importorskip: importing Ultralytics at collection would patch PIL.Image.open for
# every later test in the process (headstart undoes it only when it imports Ultralytics itself)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                                reason="needs the yolo extra: pip install 'headstart[yolo]'")


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    return write_squares(tmp_path_factory.mktemp("squares"))


def test_yolo_fit_and_predict_offline_through_the_cli(squares, tmp_path):
    run = tmp_path / "run"
    proc = cli(
        "fit",
        squares,
        "--detector",
        "yolov8n",
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--device",
        "cpu",
        "--out",
        run,
        "yolo.mosaic=0.5",
        tmp=tmp_path,
        site=BLOCK_NETWORK,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "network.log").exists(), (tmp_path / "network.log").read_text()
    assert "Caching images" not in proc.stdout + proc.stderr  # Ultralytics' own progress bars stay quiet
    for rel in (
        "config.yaml",
        "split.json",
        "history.csv",
        "metrics.json",
        "predictions.json",
        "report.html",
        "model/model.safetensors",
        "model/model.yaml",
        "model/model.json",
        "model/labels.json",
        "model/preprocessing.json",
        "plots/learning_curves.png",
        "plots/pr_curves.png",
        "plots/f1_confidence.png",
        "plots/confusion_matrix.png",
        "yolo/data/data.yaml",
    ):
        assert (run / rel).is_file(), rel
    assert not list(run.glob("model/*.pt"))
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "task",
        "map",
        "map50",
        "map75",
        "per_class",
        "n_images",
        "n_boxes",
        "conf_threshold",
        "split",
        "best_epoch",
        "epochs_run",
    ):
        assert key in metrics, key
    n_test = len(list((squares / "test").glob("*.png")))
    assert metrics["split"] == "test" and metrics["epochs_run"] == 1 and metrics["n_images"] == n_test
    assert {"test_map", "test_map50", "version"} <= set(metrics["ultralytics"])
    model = json.loads((run / "model/model.json").read_text())
    assert model["task"] == "detect" and model["detector"]["detector"] == "yolov8n" and model["yolo"]["backend"]
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["detect"]["detector"] == "yolov8n" and cfg["model"]["name"] == "yolov8n"
    assert cfg["yolo"]["mosaic"] == 0.5 and cfg["yolo"]["resolved"]["mosaic"] == 0.5
    assert cfg["yolo"]["resolved"]["optimizer"] == "AdamW" and cfg["yolo"]["resolved"]["stages"][0]["name"] == "full"
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,stage,train_loss_box") and len(history) == 2
    # config.yaml reads back as a config; as a template, only the user's yolo. entries pass through
    from headstart.config import build_config
    from headstart.tasks.detection.yolo.recipe import check_passthrough

    assert check_passthrough(build_config(config=run / "config.yaml").yolo) == {"mosaic": 0.5}

    out = tmp_path / "pred.json"
    proc = cli(
        "predict",
        run,
        squares / "test",
        "--format",
        "json",
        "--conf",
        "0",
        "--output",
        out,
        tmp=tmp_path,
        site=BLOCK_NETWORK,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "network.log").exists()
    predicted = {p["path"].rsplit("/", 1)[-1]: p for p in json.loads(out.read_text())}
    assert len(predicted) == n_test
    # the very detections that were scored: predictions.json holds the evaluated split's (COCO results)
    scored = json.loads((run / "predictions.json").read_text())
    top_scored = sorted((round(r["score"], 4) for r in scored), reverse=True)[:10]
    top_predicted = sorted((round(b["score"], 4) for p in predicted.values() for b in p["boxes"]), reverse=True)[:10]
    assert top_predicted == pytest.approx(top_scored, abs=2e-4)


def test_a_missing_extra_says_what_to_install(squares, tmp_path):
    proc = cli(
        "fit",
        squares,
        "--detector",
        "yolo11n",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        tmp_path / "run",
        tmp=tmp_path,
        site=BLOCK_ULTRALYTICS,
    )
    assert proc.returncode != 0
    assert "pip install 'headstart[yolo]'" in proc.stderr and "AGPL-3.0" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_weights_import_refuses_a_pickle_without_trust_pickle(tmp_path):
    pt = tmp_path / "yolo11n.pt"
    pt.write_bytes(b"\x80\x04not read")
    proc = cli("weights", "import", pt, "--model", "yolo11n", tmp=tmp_path)
    assert proc.returncode != 0
    assert "is a pickle" in proc.stderr and "--trust-pickle" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_imported_weights_are_used_from_the_store_with_a_frozen_first_stage(squares, tmp_path):
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    from ultralytics import YOLO

    pt = tmp_path / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(pt)
    proc = cli("weights", "import", pt, "--model", "yolov8n", "--trust-pickle", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runs with --detector yolov8n use it" in proc.stdout
    run = tmp_path / "run"
    proc = cli(  # detector auto: Ultralytics installed and the weights imported, so auto takes this YOLO
        "fit",
        squares,
        "--epochs",
        "1",
        "detect.head_epochs=1",
        "--image-size",
        "64",
        "--device",
        "cpu",
        "--out",
        run,
        tmp=tmp_path,
        site=BLOCK_NETWORK,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stderr + proc.stdout
    assert "detector auto: yolov8n (Ultralytics is installed and its pretrained weights are in the weights store)" in out
    assert "weights from store" in out
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["detect"]["detector"] == "yolov8n" and cfg["train"]["strategy"] == "head-ft"
    assert [s["name"] for s in cfg["yolo"]["resolved"]["stages"]] == ["head", "full"]
    assert cfg["yolo"]["resolved"]["stages"][0]["freeze"] == 10  # yolov8's backbone: layers 0-9
    provenance = json.loads((run / "model/provenance.json").read_text())
    assert provenance["weights"]["source"] == "store"
    history = (run / "history.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in history[1:]] == ["head", "full"]


def _fit(data, out, **kw):
    import headstart

    args = dict(detector="yolov8n", image_size=64, device="cpu", verbose=False)
    return headstart.fit(data, out=out, **{**args, **kw})


def _pickles(run):
    """Every .pt file of the run folder except headstart's own checkpoint."""
    return [p for p in run.rglob("*.pt") if p.name != "yolo-last.pt"]


def test_engine_callbacks_see_every_epoch_and_may_stop_the_stage(squares, tmp_path):
    import torch

    from headstart.engine.callbacks import Callback

    seen = []

    class StopAfterFirst(Callback):  # what tune's deadline does: stop_stage at an epoch's end
        def on_stage_start(self, trainer, stage):
            seen.append(("stage", stage.name, stage.epochs, stage.on_features))

        def on_epoch_end(self, trainer, row):
            seen.append(("epoch", trainer.state.stage_index, trainer.state.epoch, row["val_map"]))
            trainer.state.stop_stage = True

        def on_fit_end(self, trainer):
            seen.append(("end", len(trainer.state.history)))

    run = tmp_path / "run"
    result = _fit(squares, run, epochs=3, callbacks=[StopAfterFirst()])
    assert seen[0] == ("stage", "full", 3, False) and seen[-1] == ("end", 1)
    assert seen[1][:3] == ("epoch", 0, 1) and 0.0 <= seen[1][3] <= 1.0
    assert len(result.history) == 1 and result.metrics["epochs_run"] == 1
    # no pickle of Ultralytics is written; headstart's checkpoint reads back with the restricted loader
    assert _pickles(run) == []
    saved = torch.load(run / "checkpoints" / "yolo-last.pt", map_location="cpu", weights_only=True)
    assert saved["format"] == "headstart-yolo-2" and saved["epoch"] == 0 and saved["stage_done"] is True


def test_consecutive_epochs_draw_other_orders_and_augmentations(squares, tmp_path, monkeypatch):
    """Each epoch shuffles and augments anew: no global RNG (Python's, NumPy's, torch's, which
    Ultralytics augments with) starts a sample in a state it had in the previous epoch, as a reseed
    or a restore of the states at every epoch start would make it."""
    import hashlib
    import random

    import numpy as np
    import torch

    from headstart.engine.callbacks import Callback
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    from ultralytics.data.base import BaseDataset

    drawn: list[list[tuple[int, str, str]]] = [[]]
    get = BaseDataset.__getitem__

    def digest(data: bytes) -> str:
        return hashlib.sha1(data).hexdigest()

    def recorded(self, index):
        states = repr(random.getstate()).encode() + np.random.get_state()[1].tobytes()
        states += torch.get_rng_state().numpy().tobytes()
        sample = get(self, index)
        if self.augment:  # the train split's
            drawn[-1].append((index, digest(states), digest(sample["img"].numpy().tobytes())))
        return sample

    class NextEpoch(Callback):
        def on_epoch_end(self, trainer, row):
            drawn.append([])

    monkeypatch.setattr(BaseDataset, "__getitem__", recorded)
    _fit(squares, tmp_path / "run", epochs=2, batch_size=8, callbacks=[NextEpoch()])
    first, second = drawn[0], drawn[1]
    assert len(first) == len(second) > 0 and sorted(i for i, _, _ in first) == sorted(i for i, _, _ in second)
    assert [i for i, _, _ in first] != [i for i, _, _ in second]  # another order
    assert not {s for _, s, _ in first} & {s for _, s, _ in second}  # other random draws
    assert not {h for _, _, h in first} & {h for _, _, h in second}  # no image augmented the same way twice


def test_resume_needs_headstart_checkpoint(squares, tmp_path):
    import torch

    import headstart
    from headstart.config import build_config
    from headstart.errors import HeadstartError

    run = tmp_path / "run"
    run.mkdir()
    cfg = build_config(squares, task="detect", detector="yolov8n", image_size=64, epochs=1, device="cpu")
    (run / "config.yaml").write_text(cfg.to_yaml())
    with pytest.raises(HeadstartError, match=r"Cannot resume: no YOLO checkpoint at .*yolo-last\.pt.* Start the run"
                                             r" again without --resume"):
        headstart.fit(out=run, resume=True, verbose=False)
    proc = cli("fit", "--resume", "--out", run, tmp=tmp_path)
    assert proc.returncode != 0 and "Cannot resume: no YOLO checkpoint" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (run / "checkpoints").mkdir()
    torch.save({"format": "other"}, run / "checkpoints" / "yolo-last.pt")
    with pytest.raises(HeadstartError, match=r"checkpoint format 'other' is not this headstart's \('headstart-yolo-2'\)"):
        headstart.fit(out=run, resume=True, verbose=False)


@pytest.mark.slow  # four YOLO fits, 5 + 3 + 2 + 1 epochs: 16 s on one idle core, a minute on a busy machine
def test_an_interrupted_yolo_run_resumes_to_the_same_weights(squares, tmp_path):
    from safetensors.torch import load_file

    import headstart
    from headstart.engine.callbacks import Callback

    class Interrupt(Callback):
        def __init__(self, epoch):
            self.epoch = epoch

        def on_epoch_end(self, trainer, row):
            if row["epoch"] == self.epoch:
                raise KeyboardInterrupt

    # head-ft: 2 epochs with the backbone frozen, then 3 of everything. Batch 8 and Ultralytics' nominal
    # batch 24: an optimizer step every 3 batches of the 2 an epoch, so the second cut (checkpoint after
    # epoch 3, the first of the second stage) holds accumulated gradients and its first resumed batch must
    # not step; the first cut (checkpoint after epoch 2) is at the end of the first stage
    args = dict(epochs=3, batch_size=8, strategy="head-ft", overrides=["yolo.nbs=24", "detect.head_epochs=2"])
    full = _fit(squares, tmp_path / "full", **args)
    assert [r["stage"] for r in full.history] == ["head", "head", "full", "full", "full"]
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        _fit(squares, cut, callbacks=[Interrupt(3)], **args)
    with pytest.raises(KeyboardInterrupt):
        headstart.fit(out=cut, resume=True, verbose=False, callbacks=[Interrupt(4)])
    resumed = headstart.fit(out=cut, resume=True, verbose=False)

    def rows(history):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    assert rows(resumed.history) == rows(full.history)
    assert resumed.metrics["map"] == full.metrics["map"] and resumed.metrics["epochs_run"] == 5
    a, b = load_file(tmp_path / "full" / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert _pickles(cut) == []
