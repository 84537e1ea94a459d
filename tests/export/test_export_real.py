"""Export round trip with the real MobileNetV2 ImageNet weights on examples/faces (slow)."""

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import real_weights_store

FACES = Path(__file__).resolve().parents[2] / "examples" / "faces"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(real_weights_store() is None, reason="no real weights: headstart weights fetch mobilenetv2_100"),
]


def test_mobilenetv2_exports_match_pytorch_and_the_run_folder(tmp_path):
    import headstart
    from headstart.export import export_model
    from headstart.predict import Predictor, load_predictor

    headstart.fit(FACES, model="mobilenetv2_100", strategy="linear-probe", image_size=96, device="cpu",
                  verbose=False, seed=0, out=tmp_path / "run")
    images = sorted((FACES / "face").iterdir())[:6] + sorted((FACES / "non_face").iterdir())[:6]
    reference = Predictor.from_run(tmp_path / "run").predict(images, top_k=2)
    assert {p.labels[0] for p in reference} == {"face", "non_face"}  # a real, non-constant model
    for fmt in ("onnx", "torchscript"):
        result = export_model(tmp_path / "run", fmt)
        print(result.summary())
        assert result.parity.n_real == 8 and result.parity.max_abs_diff < 1e-4
        preds = load_predictor(result.path).predict(images, top_k=2)
        assert [p.labels for p in preds] == [p.labels for p in reference]
        np.testing.assert_allclose([p.probs for p in preds], [p.probs for p in reference], atol=1e-4)
