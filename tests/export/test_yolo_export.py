"""`headstart export RUN --format onnx` for a YOLO run (Ultralytics' model rebuilt from the run's
YAML + safetensors, behind torchvision's detector interface): the whole detector in the graph, the
box parity check against PyTorch, and `headstart predict model.onnx` on the light install (torch,
torchvision and Ultralytics blocked) giving the run folder's boxes."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.export.box_helpers import assert_same_boxes
from tests.light_install import light_cli
from tests.tasks.detection.yolo_helpers import cli, write_squares

# find_spec, not importorskip: importing Ultralytics at collection would patch PIL.Image.open for
# every later test in the process (headstart undoes it only when it imports Ultralytics itself)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                                reason="needs the yolo extra: pip install 'headstart[yolo]'")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def yolo_run(tmp_path_factory):
    """A 1-epoch yolov8n run at 64 px from the model YAML (random init, offline), ~12 s."""
    tmp = tmp_path_factory.mktemp("yolo-export")
    data = write_squares(tmp / "squares")
    proc = cli(
        "fit", data, "--detector", "yolov8n", "--epochs", "1", "--image-size", "64", "--device", "cpu",
        "--out", tmp / "run", tmp=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run", data, tmp


def test_cli_export_checks_parity_and_light_predict_gives_the_run_boxes(yolo_run, tmp_path):
    import onnx

    from headstart.tasks.detection.predict import BoxPredictor

    run, data, tmp = yolo_run
    target = tmp_path / "yolo.onnx"
    proc = cli("export", run, "--format", "onnx", "--output", target, tmp=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parity with PyTorch:" in proc.stdout and "boxes matched by IoU" in proc.stdout, proc.stdout
    assert "mAP on the test split: export" in proc.stdout, proc.stdout
    props = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
    assert props["task"] == "detect" and props["detector"] == "yolov8n" and props["first_label"] == "0"
    assert json.loads(props["labels"]) == ["red", "blue"] and props["input_size"] == "64"
    assert props["max_det"] == "100" and props["score_floor"] == "0.001" and "conf" in props
    assert json.loads(props["headstart"])["architecture"] == "yolov8n"

    # torch, torchvision and Ultralytics fail to import: the box runtime is onnxruntime + numpy
    proc = light_cli("predict", target, data / "test", "--format", "json", "--conf", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    want = [p.to_dict() for p in BoxPredictor.from_run(run).predict([data / "test"], conf=0.0)]
    assert [p["path"] for p in got] == [p["path"] for p in want]
    for g, w in zip(got, want):
        assert_same_boxes(g["boxes"], w["boxes"])
    assert len(got) == 4 and sum(len(p["boxes"]) for p in got) > 0

    # `headstart serve model.onnx`: the same backend behind the HTTP app
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from headstart.serve.app import create_app, load_serving_backend

    first = sorted((data / "test").iterdir())[0]
    backend = load_serving_backend(target)
    assert backend.kind == "onnx"
    with TestClient(create_app(backend)) as client:
        info = client.get("/model").json()
        assert info["task"] == "detect" and info["detector"]["detector"] == "yolov8n" and info["backend"] == "onnx"
        reply = client.post("/predict", params={"conf": 0.0}, files={"image": (first.name, first.read_bytes())})
        assert reply.status_code == 200, reply.text
    served = reply.json()["boxes"]
    (expected,) = [p for p in want if p["path"].endswith(first.name)]
    assert_same_boxes(served, expected["boxes"])


class _RowScores:
    """A stand-in for Ultralytics' model in :class:`YoloDetector`: 16 fixed, disjoint boxes whose one
    class score is the red channel of the first 16 pixels of row 0 (so the input decides how many
    candidates pass the score floor)."""

    @staticmethod
    def build():
        import torch

        class RowScores(torch.nn.Module):
            stride = torch.tensor([8.0])

            def forward(self, x):
                cx = torch.arange(16, dtype=x.dtype) * 4 + 2
                boxes = torch.stack([cx, torch.full_like(cx, 2), torch.full_like(cx, 3), torch.full_like(cx, 3)])
                return torch.cat([boxes[None].expand(x.shape[0], 4, 16), x[:, :1, 0, :16]], 1)

        return RowScores()


def test_pre_nms_cap_stays_dynamic_in_the_graph(tmp_path):
    """The cap on NMS candidates is traced as min(cap, count): the export's example (a black image)
    has no candidate, an image with 16 keeps the 5 best, as in PyTorch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from headstart.export.detection_onnx import _export_graph
    from headstart.tasks.detection.export import DetectorGraph
    from headstart.tasks.detection.yolo.model import YoloDetector

    graph = DetectorGraph(YoloDetector(_RowScores.build(), 64, pre_nms=5))
    _export_graph(graph, torch.zeros((1, 3, 48, 64), dtype=torch.uint8), tmp_path / "m.onnx", 17)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n_lit in (16, 3, 0):
        image = np.zeros((1, 3, 64, 48), np.uint8)
        image[0, 0, 0, :n_lit] = np.linspace(100, 250, 16).astype(np.uint8)[:n_lit]
        boxes, scores, labels = session.run(None, {"image": image})
        with torch.inference_mode():
            want = [t.numpy() for t in graph(torch.from_numpy(image))]
        assert len(scores) == min(n_lit, 5)
        np.testing.assert_allclose(scores, want[1], atol=1e-6)
        np.testing.assert_allclose(boxes, want[0], atol=1e-4)


def test_failed_parity_removes_the_yolo_export(yolo_run, tmp_path, monkeypatch):
    import headstart.export.detection_onnx as dx
    from headstart.export import ParityError, export_model

    original = dx._export_graph

    def tampered(graph, example, path, opset):
        import copy

        import torch

        broken = copy.deepcopy(graph)
        with torch.no_grad():  # every class logit of the head moves: every score changes
            for branch in broken.model.model.model[-1].cv3:
                branch[-1].bias.add_(1.0)
        original(broken, example, path, opset)

    monkeypatch.setattr(dx, "_export_graph", tampered)
    run, _, _ = yolo_run
    target = tmp_path / "broken.onnx"
    with pytest.raises(
        ParityError,
        match=r"failed its check against PyTorch and was removed \(broken.onnx\): .*score differs by",
    ):
        export_model(run, "onnx", output=target)
    assert not target.exists() and not list(tmp_path.iterdir())
