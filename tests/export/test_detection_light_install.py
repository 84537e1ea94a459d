"""`headstart predict model.onnx` for a detector on the light install (torch, torchvision, timm and
the other heavy modules fail to import): the same boxes as the run folder, in every output format,
with --conf, --max-det and --save-images (drawn with Pillow)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from tests.export.box_helpers import assert_same_boxes, boxes_of
from tests.light_install import light_cli


def _reference(run, images, **kw):
    from headstart.tasks.detection.predict import BoxPredictor

    return [p.to_dict() for p in BoxPredictor.from_run(run).predict([images], **kw)]


def _assert_same(got: list[dict], want: list[dict], conf: float = 0.0) -> None:
    """Same images and sizes; each image's boxes matched by IoU and label, scores within 1e-4 and
    boxes within 0.05 px (the two runtimes' float arithmetic differs in the last bits)."""
    assert [(p["path"], p.get("width")) for p in got] == [(p["path"], p.get("width")) for p in want]
    for g, w in zip(got, want):
        assert_same_boxes(g["boxes"], w["boxes"], conf=conf)


def test_in_process_onnx_predictor_matches_the_run_folder(tiny_det_run, tiny_det_export, tiny_det_data):
    from headstart.predict import load_predictor

    onnx_predictor = load_predictor(tiny_det_export.path)
    assert type(onnx_predictor).__name__ == "BoxPredictor" and onnx_predictor.kind == "onnx"
    assert onnx_predictor.classes == ["red", "blue"] and onnx_predictor.max_det == 100
    run_predictor = load_predictor(tiny_det_run)
    assert run_predictor.kind == "pytorch" and onnx_predictor.conf == pytest.approx(run_predictor.conf)
    got = onnx_predictor.predict([tiny_det_data], conf=0.0)
    want = run_predictor.predict([tiny_det_data], conf=0.0)
    assert [p.path for p in got] == [p.path for p in want] and len(got) == 24
    for g, w in zip(got, want):
        assert g.size == w.size
        assert_same_boxes(boxes_of(g), boxes_of(w))
    assert sum(len(p.boxes) for p in got) > 24


def test_light_cli_predicts_boxes_from_onnx_without_torch(tiny_det_run, tiny_det_export, tiny_det_data, tmp_path):
    onnx_path = tiny_det_export.path
    proc = light_cli("predict", onnx_path, tiny_det_data, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    from headstart.tasks.detection.predict import BoxPredictor

    _assert_same(got, _reference(tiny_det_run, tiny_det_data), conf=BoxPredictor.from_run(tiny_det_run).conf)
    assert len(got) == 24 and sum(len(p["boxes"]) for p in got) > 0

    # a cut that keeps some boxes whatever the tiny run's scores are: the upper quartile of its scores
    scores = [b["score"] for p in _reference(tiny_det_run, tiny_det_data / "test", conf=0.0) for b in p["boxes"]]
    cut = round(float(sorted(scores)[(3 * len(scores)) // 4]), 4)
    proc = light_cli(
        "predict",
        onnx_path,
        tiny_det_data / "test",
        "--format",
        "csv",
        "--conf",
        str(cut),
        "--max-det",
        "2",
        "--save-images",
        tmp_path / "drawn",
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    want = _reference(tiny_det_run, tiny_det_data / "test", conf=cut, max_det=2)
    assert rows and all(float(r["score"]) >= cut for r in rows if r["label"])
    by_path: dict[str, list[dict]] = {}
    for r in rows:  # CSV: one row per box, coordinates to 0.01 px, scores to 1e-5
        if r["label"]:
            by_path.setdefault(r["path"], []).append(
                {"box": [float(r[k]) for k in ("x1", "y1", "x2", "y2")], "score": float(r["score"]), "label": r["label"]})
    assert sorted(by_path) == sorted(p["path"] for p in want if p["boxes"])
    for w in want:  # matched by IoU and label; a box without a partner only at the cut or the cap of 2
        got = by_path.get(w["path"], [])
        assert len(got) <= 2
        assert_same_boxes(got, w["boxes"], conf=cut)
    drawn = sorted((tmp_path / "drawn").iterdir())
    assert [d.name for d in drawn] == [f"im{i}.png" for i in range(19, 24)]
    assert Image.open(drawn[0]).size == (64, 48)

    proc = light_cli("predict", onnx_path, tiny_det_data / "test", "--conf", "1.5")
    assert proc.returncode == 2 and "The 'conf' parameter must be a float in [0, 1]. Got 1.5." in proc.stderr, (
        proc.stderr
    )
    # the run folder itself needs torch, and says that the .onnx does not
    proc = light_cli("predict", tiny_det_run, tiny_det_data / "test")
    assert proc.returncode == 1 and "needs only 'headstart[predict]'" in proc.stderr and "Traceback" not in proc.stderr
