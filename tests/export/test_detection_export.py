"""ONNX export of a detection run: the graph and its metadata, the parity check (boxes matched by
IoU, mAP on the evaluated split) and its failures, which remove the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


def test_export_keeps_a_verified_file_with_its_metadata(tiny_det_run, tiny_det_export):
    import onnx

    result = tiny_det_export
    assert result.path == tiny_det_run / "export" / "model.onnx" and result.path.is_file()
    report = result.parity
    assert report.ok and report.n_real == 5 and report.n_random == 2
    assert report.n_reference_boxes > 0 and report.n_matched == report.n_reference_boxes
    assert report.max_box_diff <= 0.05 and report.max_score_diff <= 1e-4
    run_map = json.loads((tiny_det_run / "metrics.json").read_text())["map"]
    assert report.map_split == "test" and report.map_run == run_map and abs(report.map_export - run_map) <= 0.005
    assert "boxes matched by IoU" in result.summary() and "mAP on the test split: export" in result.summary()

    model = onnx.load(str(result.path))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["headstart"])
    model_json = json.loads((tiny_det_run / "model" / "model.json").read_text())
    assert props["task"] == "detect" and props["detector"] == "fcos" and json.loads(props["labels"]) == ["red", "blue"]
    assert float(props["conf"]) == pytest.approx(model_json["conf"]) and props["max_det"] == "100"
    assert props["input_size"] == "64" and props["score_floor"] == "0.05" and props["first_label"] == "0"
    assert meta["detector"]["backbone"] == "test_resnet" and meta["provenance"]["run_dir"] == str(
        tiny_det_run.resolve()
    )
    assert meta["preprocessing"]["crop_mode"] == "border" and meta["dynamic_batch"] is False
    # one image per call, height and width dynamic
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == [1, 3, "height", "width"]
    assert [o.name for o in model.graph.output] == ["boxes", "scores", "labels"]


def test_onnx_boxes_match_pytorch_on_images_of_any_shape(tiny_det_run, tiny_det_export):
    import torch

    from headstart.export.box_parity import compare_boxes
    from headstart.export.box_runtime import OnnxBoxBackend
    from headstart.tasks.detection.export import DetectorGraph, load_run_model

    model, _ = load_run_model(tiny_det_run)
    graph = DetectorGraph(model)
    backend = OnnxBoxBackend(tiny_det_export.path)
    rng = np.random.default_rng(1)
    for shape in ((3, 64, 64), (3, 20, 64), (3, 64, 37)):
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        with torch.inference_mode():
            boxes, scores, labels = graph(torch.from_numpy(array)[None])
        got = backend.detect([array])[0]
        pairs, unmatched = compare_boxes(
            (boxes.numpy(), scores.numpy(), labels.numpy()), got, score_floor=0.05, cap=100
        )
        assert len(pairs) == len(scores) == len(got[1]) and not unmatched
        assert (got[0][:, 2] <= shape[2] + 1e-3).all() and (got[0][:, 3] <= shape[1] + 1e-3).all()


def test_compare_boxes_matches_by_iou_not_by_index():
    from headstart.export.box_parity import compare_boxes

    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [5, 30, 5, 30]], np.float32)  # the last one has no area
    scores, labels = np.array([0.9, 0.5, 0.3], np.float32), np.array([0, 1, 1])
    order = [1, 0, 2]
    pairs, unmatched = compare_boxes(
        (boxes, scores, labels), (boxes[order] + 0.01, scores[order], labels[order]), score_floor=0.05, cap=100
    )
    assert len(pairs) == 3 and not unmatched and max(b for b, _ in pairs) == pytest.approx(0.01, abs=1e-5)
    # another label is not a match; a box only on one side is allowed near the score floor only
    low = (np.vstack([boxes, [[50, 50, 60, 60]]]), np.append(scores, 0.0505), np.append(labels, 0))
    _, unmatched = compare_boxes(low, (boxes, scores, np.array([1, 1, 1])), score_floor=0.05, cap=100)
    assert sorted((side, round(score, 4), ok) for side, score, ok in unmatched) == [
        ("export", 0.9, False),
        ("pytorch", 0.0505, True),
        ("pytorch", 0.9, False),
    ]


def test_failed_box_parity_removes_the_file_and_says_why(tiny_det_run, tmp_path, monkeypatch):
    import headstart.export.detection_onnx as dx
    from headstart.export import ParityError, export_model

    original = dx._export_graph

    def tampered(graph, example, path, opset):
        import copy

        import torch

        broken = copy.deepcopy(graph)
        with torch.no_grad():  # a different box regression: every box moves
            broken.model.head.regression_head.bbox_reg.bias.add_(0.5)
        original(broken, example, path, opset)

    monkeypatch.setattr(dx, "_export_graph", tampered)
    target = tmp_path / "broken.onnx"
    with pytest.raises(
        ParityError,
        match=r"failed its check against PyTorch and was removed \(broken.onnx\): a matched"
        r" box moved by [0-9.]+ px \(tolerance 0.05\)",
    ):
        export_model(tiny_det_run, "onnx", output=target)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_map_check_fails_when_the_run_says_otherwise(tiny_det_run, tmp_path):
    from headstart.export import ParityError, export_model

    run = shutil.copytree(tiny_det_run, tmp_path / "run", ignore=shutil.ignore_patterns("export", "checkpoints"))
    metrics = json.loads((run / "metrics.json").read_text())
    real = metrics["map"]
    metrics["map"] = real + 0.25
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(
        ParityError,
        match=rf"the export's mAP on the test split is {real:.4f}, the run's"
        rf" {real + 0.25:.4f} \(tolerance 0.005\)",
    ):
        export_model(run, "onnx")
    assert not (run / "export" / "model.onnx").exists()


def test_dataset_moved_checks_boxes_on_given_images_and_says_map_was_not(tiny_det_run, tiny_det_data, tmp_path):
    from headstart.export import export_model

    run = shutil.copytree(tiny_det_run, tmp_path / "run", ignore=shutil.ignore_patterns("export", "checkpoints"))
    split = json.loads((run / "split.json").read_text())
    split["root"] = str(tmp_path / "moved")
    (run / "split.json").write_text(json.dumps(split))
    result = export_model(run, "onnx", images=[tiny_det_data / "train"])
    assert result.parity.ok and result.parity.n_real == 14 and result.parity.map_export is None
    assert "mAP not checked: the run's evaluated images are not at their recorded place" in result.summary()


def test_torchscript_of_a_detector_is_not_offered(tiny_det_run):
    from headstart.export import export_model
    from headstart.tasks import UnsupportedForTask

    with pytest.raises(
        UnsupportedForTask,
        match=r"`headstart export --format torchscript` is not available for object"
        r" detection runs",
    ):
        export_model(tiny_det_run, "torchscript")


@pytest.mark.parametrize("detector", ["fasterrcnn", "fcos", "retinanet"])
def test_every_detector_exports_whole_and_matches_pytorch(detector, tmp_path):
    import onnxruntime as ort
    import torch

    from headstart.export.box_parity import compare_boxes
    from headstart.export.box_runtime import OnnxBoxBackend
    from headstart.export.detection_onnx import _export_graph
    from headstart.tasks.detection.export import DetectorGraph, detector_limits
    from headstart.tasks.detection.models import DetectorSpec, create_detector

    torch.manual_seed(0)
    spec = DetectorSpec(detector, "test_resnet", 3, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), fpn_channels=64)
    model = create_detector(spec).eval()
    heads = getattr(model, "roi_heads", model)
    heads.score_thresh = 0.01  # random heads score low: keep enough boxes to compare
    graph = DetectorGraph(model)
    path = tmp_path / f"{detector}.onnx"
    _export_graph(graph, torch.zeros((1, 3, 48, 64), dtype=torch.uint8), path, 17)
    meta = {
        "task": "detect",
        "labels": ["a", "b", "c"],
        "first_label": spec.first_label,
        "preprocessing": {"input_size": 64, "crop_pct": 1.0, "crop_mode": "border", "interpolation": "bilinear"},
    }
    backend = OnnxBoxBackend(
        path, session=ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), metadata=meta
    )
    floor, cap = detector_limits(model)
    rng = np.random.default_rng(0)
    compared = 0
    for shape in ((3, 48, 64), (3, 64, 40), (3, 64, 64)):
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        with torch.inference_mode():
            boxes, scores, labels = graph(torch.from_numpy(array)[None])
        ref = (boxes.numpy(), scores.numpy(), labels.numpy() - spec.first_label)
        got = backend.detect([array])[0]
        pairs, unmatched = compare_boxes(ref, got, score_floor=floor, cap=cap)
        assert not [u for u in unmatched if not u[2]], unmatched
        assert max((b for b, _ in pairs), default=0) <= 0.05 and max((s for _, s in pairs), default=0) <= 1e-4
        assert set(got[2].tolist()) <= {0, 1, 2}
        compared += len(pairs)
    assert compared > 0


def test_cli_export_of_a_detection_run(tiny_det_run, tmp_path):
    import subprocess
    import sys

    target = tmp_path / "det.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "headstart", "export", str(tiny_det_run), "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"onnx export: {target}" in proc.stdout and "boxes matched by IoU on 5 real image(s)" in proc.stdout
    assert "mAP on the test split: export" in proc.stdout and target.is_file()
