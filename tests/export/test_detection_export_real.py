"""Detection export with the real MobileNetV2 ImageNet weights (slow): an FCOS run on the real-photo
glyphs example, exported to ONNX; boxes matched to PyTorch's, the export's mAP equal to the run's,
and predict from the .onnx giving the run folder's boxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import real_weights_store
from tests.export.box_helpers import assert_same_boxes, boxes_of

GLYPHS = Path(__file__).resolve().parents[2] / "examples" / "glyphs"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # a CPU fit: about 70 CPU seconds, many wall minutes on a busy machine
    pytest.mark.skipif(real_weights_store() is None, reason="no real weights: headstart weights fetch mobilenetv2_100"),
]


def test_mobilenetv2_detector_exports_with_parity(tmp_path, monkeypatch):
    import headstart
    from headstart.export import export_model
    from headstart.predict import load_predictor

    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(real_weights_store()))
    run = tmp_path / "run"
    fit = headstart.fit(GLYPHS, model="mobilenetv2_100", epochs=3, device="cpu", verbose=False, seed=0, out=run)
    assert fit.config.detect.detector == "fcos" and fit.metrics["map"] > 0.02, fit.metrics  # a real, trained model
    result = export_model(run, "onnx")
    print(result.summary())
    report = result.parity
    assert report.ok and report.n_real == 16 and report.n_matched == report.n_reference_boxes > 100
    assert report.map_split == "test" and abs(report.map_export - fit.metrics["map"]) <= 0.005
    images = sorted((GLYPHS / "test").glob("*.jpg"))[:4]
    got = load_predictor(result.path).predict(images, conf=0.1)
    want = load_predictor(run).predict(images, conf=0.1)
    assert sum(len(p.boxes) for p in want) > 0
    for g, w in zip(got, want):
        assert_same_boxes(boxes_of(g), boxes_of(w))
