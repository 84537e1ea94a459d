"""The YOLO backend's parts, without training: the YOLO layout written from headstart's records,
the config -> Ultralytics mapping and its checks, the prediction adapter, and the one-time
conversion of a pickled .pt into the weights store (refused without --trust-pickle)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from headstart.config import build_config
from headstart.errors import ConfigError, WeightsMismatchError
from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco
from tests.tasks.detection.yolo_helpers import write_squares

# find_spec, not importorskip: importing Ultralytics at collection would patch PIL.Image.open for
# every later test in the process (headstart undoes it only when it imports Ultralytics itself)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                                reason="needs the yolo extra: pip install 'headstart[yolo]'")


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return write_squares(tmp_path_factory.mktemp("squares"))


def _index(root):
    from headstart.data.detection import load_detection_dataset

    return load_detection_dataset(root, seed=0)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_layout_is_written_inside_the_given_folder_from_headstart_boxes(squares, tmp_path):
    from headstart.tasks.detection.yolo.layout import write_yolo_dataset

    index = _index(squares)
    before = _files(squares)
    out = write_yolo_dataset(index.splits, index.classes, tmp_path / "run" / "yolo" / "data")
    assert _files(squares) == before  # the user's dataset is untouched
    import yaml

    data = yaml.safe_load(out["yaml"].read_text())
    assert data["names"] == {0: "red", 1: "blue"} and data["test"] == "images/test"
    assert out["splits"] == {k: len(v) for k, v in index.splits.items()}
    assert sum(out["placed"].values()) == sum(out["splits"].values())
    sample = index.splits["train"][0]
    image = next((tmp_path / "run/yolo/data/images/train").glob("000000_*"))
    assert image.read_bytes() == Path(sample.path).read_bytes()
    lines = (tmp_path / "run/yolo/data/labels/train" / f"{image.stem}.txt").read_text().split()
    x1, y1, x2, y2 = sample.boxes[0]
    expect = [
        sample.labels[0],
        (x1 + x2) / 2 / sample.width,
        (y1 + y2) / 2 / sample.height,
        (x2 - x1) / sample.width,
        (y2 - y1) / sample.height,
    ]
    assert [float(v) for v in lines[:5]] == pytest.approx(expect, abs=1e-5)


def test_ignored_boxes_are_left_out_of_the_labels(tmp_path):
    from headstart.tasks.detection.yolo.layout import write_yolo_dataset

    images = [
        FixtureImage(
            f"a{i}.png",
            [FixtureBox("cat", 2, 2, 20, 20), FixtureBox("dog", 30, 10, 50, 40, ignore=True)],
            split=s,
            size=(64, 48),
        )
        for i, s in enumerate(["train", "train", "val", "val"])
    ]
    write_coco(tmp_path / "ds", images, ["cat", "dog"])
    index = _index(tmp_path / "ds")
    write_yolo_dataset(index.splits, index.classes, tmp_path / "out")
    for label in (tmp_path / "out" / "labels").rglob("*.txt"):
        rows = label.read_text().strip().splitlines()
        assert len(rows) == 1 and rows[0].startswith("0 "), rows


def _resolved(**kw):
    from headstart.tasks.detection.yolo.recipe import resolve_yolo_choices

    overrides = kw.pop("overrides", [])
    has_weights = kw.pop("has_weights", False)
    cfg = build_config("/data", task="detect", detector="yolo11n", image_size=320, overrides=overrides, **kw)
    return resolve_yolo_choices(cfg, [object()] * 240, device_type="cpu", has_weights=has_weights)


def test_config_maps_onto_ultralytics_arguments():
    from headstart.tasks.detection.yolo.recipe import resolve_yolo_choices, train_args

    cfg, reasons = _resolved()
    assert (cfg.train.strategy, cfg.train.batch_size, cfg.train.lr, cfg.train.epochs) == ("full", 16, 1e-3, 12)
    assert cfg.augment.preset == "medium" and any("random init" in r for r in reasons)
    args = train_args(cfg, device="cpu", data_yaml="d.yaml", project="p")
    assert args["optimizer"] == "AdamW" and args["lr0"] == 1e-3 and args["imgsz"] == 320 and args["epochs"] == 12
    assert args["mosaic"] == 1.0 and args["plots"] is False and args["device"] == "cpu" and args["workers"] == 0
    assert args["weight_decay"] == cfg.train.weight_decay == 5e-4  # Ultralytics' own unless the user set another
    # decided by value: a config.yaml read back (every key written) resolves the same
    again, _ = resolve_yolo_choices(build_config(config=cfg.to_dict()), [object()] * 240, device_type="cpu",
                                    has_weights=False)
    assert again.train.weight_decay == 5e-4
    reread, _ = _resolved(weight_decay=0.05)  # headstart's default value: Ultralytics' decay
    assert reread.train.weight_decay == 5e-4
    assert args["amp"] is False  # its AMP check on a GPU would download a model

    cfg, _ = _resolved(optimizer="sgd", weight_decay=1e-4, augment="none", patience=3)
    args = train_args(cfg, device="cuda:1", data_yaml="d.yaml", project="p")
    assert args["optimizer"] == "SGD" and args["lr0"] == 1e-2 and args["weight_decay"] == 1e-4
    assert args["device"] == "1" and args["patience"] == 3 and args["workers"] == 8
    assert args["mosaic"] == 0 and args["fliplr"] == 0 and args["hsv_v"] == 0

    cfg, reasons = _resolved(has_weights=True, augment="light")
    assert cfg.train.strategy == "head-ft" and cfg.detect.head_epochs == 2
    args = train_args(cfg, device="cpu", data_yaml="d.yaml", project="p")
    assert args["mosaic"] == 0 and args["fliplr"] == 0.5 and args["scale"] == cfg.augment.zoom


def test_yolo_passthrough_is_checked_against_ultralytics_arguments():
    from headstart.tasks.detection.yolo.recipe import check_passthrough

    cfg = build_config("/data", overrides=["yolo.mosaic=0.5", "yolo.close_mosaic=0"])
    assert check_passthrough(cfg.yolo) == {"mosaic": 0.5, "close_mosaic": 0}
    assert check_passthrough({"resolved": {"x": 1}, "mixup": 0.2}) == {"mixup": 0.2}
    with pytest.raises(ConfigError, match=r"Unknown Ultralytics argument yolo.mosiac.*mosaic"):
        check_passthrough({"mosiac": 0.5})
    with pytest.raises(ConfigError, match=r"yolo.data is set by headstart"):
        check_passthrough({"data": "x.yaml"})
    with pytest.raises(ConfigError, match=r"yolo.device is set by headstart"):
        check_passthrough({"device": "0,1"})


def test_weights_that_match_no_tensor_are_refused_before_training():
    import torch

    from headstart.tasks.detection.yolo.model import build_yolo_model
    from headstart.tasks.detection.yolo.train import YoloStage, train_stages

    model = build_yolo_model("yolov8n.yaml", 2)
    with pytest.raises(WeightsMismatchError, match=r"None of the 1 tensors .* match the yolov8n.yaml model"):
        train_stages(model, [YoloStage("full", 1, 0)], {}, state={"fc.weight": torch.zeros(2, 2)}, log=print)


def test_config_yaml_holds_the_yolo_section_only_when_set():
    assert "yolo" not in build_config("/data", task="detect").to_dict()
    assert build_config("/data", task="detect", overrides=["yolo.mosaic=0"]).to_dict()["yolo"] == {"mosaic": 0}


def test_unknown_detector_names_get_a_suggestion():
    from headstart.tasks.detection.choices import resolve_choices

    cfg = build_config("/data", task="detect", detector="yolo11")
    with pytest.raises(ConfigError, match=r"detect.detector.*Got 'yolo11'.*yolo11n"):
        resolve_choices(cfg, [], device_type="cpu")


def test_adapter_gives_torchvision_style_boxes_inside_each_image():
    import torch

    from headstart.tasks.detection.yolo.model import YoloDetector, build_yolo_model

    torch.manual_seed(0)
    model = build_yolo_model("yolov8n.yaml", 2).eval()
    det = YoloDetector(model, 96, max_det=7).eval()
    images = [torch.rand(3, 96, 64), torch.rand(3, 48, 96)]
    with torch.inference_mode():
        outs = det(images)
    assert len(outs) == 2
    for out, im in zip(outs, images):
        assert set(out) == {"boxes", "scores", "labels"} and 0 < len(out["boxes"]) <= 7
        h, w = im.shape[-2:]
        assert (out["boxes"][:, [0, 2]] <= w).all() and (out["boxes"][:, [1, 3]] <= h).all()
        assert (
            (out["boxes"] >= 0).all() and (out["labels"] < 2).all() and (out["scores"][:-1] >= out["scores"][1:]).all()
        )
    with pytest.raises(RuntimeError, match="inference only"):
        det.train()(images)


def test_a_pt_is_refused_without_trust_pickle(tmp_path):
    from headstart.tasks.detection.yolo.weights import import_yolo_checkpoint

    pt = tmp_path / "yolo11n.pt"
    pt.write_bytes(b"not even read")
    with pytest.raises(ConfigError, match=r"yolo11n.pt is a pickle.*--trust-pickle"):
        import_yolo_checkpoint(pt, "yolo11n", store_root=tmp_path / "store")
    with pytest.raises(ConfigError, match=r"'yolo11' is not a YOLO detector.*yolo11n"):
        import_yolo_checkpoint(pt, "yolo11", trust_pickle=True, store_root=tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_a_trusted_pt_is_converted_once_into_safetensors_and_its_yaml(tmp_path):
    import torch
    import yaml
    from safetensors.torch import load_file

    from headstart.tasks.detection.yolo.model import build_yolo_model
    from headstart.tasks.detection.yolo.runtime import load_ultralytics
    from headstart.tasks.detection.yolo.weights import find_yolo_weights, import_yolo_checkpoint

    load_ultralytics()
    from ultralytics import YOLO

    pt = tmp_path / "mine.pt"
    YOLO("yolov8n.yaml").save(pt)  # a .pt as Ultralytics writes it: a pickle of the whole model
    store = tmp_path / "store"
    for wrong in ("yolo11n", "yolov8s"):
        with pytest.raises(WeightsMismatchError, match=f"holds a yolov8n.yaml model .scale n., not '{wrong}'"):
            import_yolo_checkpoint(pt, wrong, trust_pickle=True, store_root=store)
    entry = import_yolo_checkpoint(pt, "yolov8n", trust_pickle=True, store_root=store)
    assert entry["mapping"] == "ultralytics" and len(entry["classes"]) == 80
    found = find_yolo_weights("yolov8n", store_root=store)
    assert found is not None and found.path == Path(entry["path"]) and found.yaml_path.is_file()
    rebuilt = build_yolo_model(yaml.safe_load(found.yaml_path.read_text()), 80)
    rebuilt.load_state_dict(load_file(found.path))  # strict: no pickle needed any more
    original = torch.load(pt, map_location="cpu", weights_only=False)["model"].float()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(rebuilt.eval()(x)[0], original.eval()(x)[0], atol=1e-4)
    assert find_yolo_weights("yolo11n", store_root=store) is None
    assert os.path.basename(found.path).endswith(".safetensors")


@pytest.mark.slow
def test_export_hook_writes_an_onnx_graph_equal_to_pytorch(squares, tmp_path):
    pytest.importorskip("onnxruntime")
    import headstart
    from headstart.tasks.detection.yolo.export import export_yolo_onnx

    run = tmp_path / "run"
    headstart.fit(squares, out=run, detector="yolov8n", epochs=1, image_size=64, device="cpu", verbose=False)
    info = export_yolo_onnx(run, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").is_file() and info["output"][:2] == [1, 4 + 2]
    assert info["max_abs_diff"] <= 1e-3 and info["classes"] == ["red", "blue"]


def test_importing_ultralytics_leaves_pillow_and_torch_save_as_they_were(tmp_path):
    """Ultralytics replaces PIL.Image.open (and torch.save) on import; its open raised
    ModuleNotFoundError (pi-heif) on a corrupt file, which broke headstart's skip-unreadable-images
    handling for the rest of the process (caught by the full suite after the YOLO tests ran)."""
    import subprocess
    import sys

    code = (
        "import PIL.Image, torch\n"
        "o, s = PIL.Image.open, torch.save\n"
        "from headstart.tasks.detection.yolo.runtime import load_ultralytics\n"
        "load_ultralytics()\n"
        "import ultralytics.data, ultralytics.engine.trainer\n"
        "assert PIL.Image.open is o and torch.save is s, 'patched'\n"
        f"open({str(tmp_path / 'bad.jpg')!r}, 'wb').write(b'not an image')\n"
        "try:\n"
        f"    PIL.Image.open({str(tmp_path / 'bad.jpg')!r})\n"
        "except PIL.UnidentifiedImageError:\n"
        "    print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_checkpoint_rng_states_read_back_with_the_restricted_loader_and_replay_the_draws(tmp_path):
    import random

    import numpy as np
    import torch

    from headstart.tasks.detection.yolo import checkpoint

    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian in NumPy's state too
    checkpoint.write(tmp_path / "c.pt", {"format": checkpoint.FORMAT, "rng": checkpoint.rng_state()})

    def draws():
        return random.random(), float(np.random.standard_normal()), float(torch.rand(()))

    first = draws()
    assert draws() != first  # the streams move on
    checkpoint.restore_rng(checkpoint.read(tmp_path / "c.pt"))  # torch.load(weights_only=True) inside
    assert draws() == first
