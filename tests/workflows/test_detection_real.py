"""Detection with the real MobileNetV2 ImageNet weights on the real-photo glyphs example (slow):
transfer works (far above random initialisation), and predict gives the run's boxes."""

from __future__ import annotations

from pathlib import Path

import pytest

import headstart
from tests.conftest import real_weights_store

GLYPHS = Path(__file__).resolve().parents[2] / "examples" / "glyphs"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # two CPU fits: minutes each on a busy machine


@pytest.fixture(scope="module")
def store():
    root = real_weights_store()
    if root is None:
        pytest.skip("no real weights in the store: run `make weights` (headstart weights fetch mobilenetv2_100)")
    return root


def test_pretrained_backbone_detects_glyphs_on_unseen_photos(store, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(store))
    common = dict(model="mobilenetv2_100", epochs=10, device="cpu", verbose=False)
    pretrained = headstart.fit(GLYPHS, out=tmp_path / "pre", **common)
    random = headstart.fit(GLYPHS, out=tmp_path / "rand", pretrained=False, **common)
    assert pretrained.task == "detect" and pretrained.config.detect.detector == "fcos"
    # test backgrounds are photos never seen in training: this is transfer, not memory
    assert pretrained.metrics["map50"] > 0.15, pretrained.metrics
    assert pretrained.metrics["map"] > random.metrics["map"] + 0.1, (pretrained.metrics["map"], random.metrics["map"])
    preds = headstart.load(tmp_path / "pre").predict(sorted((GLYPHS / "test").glob("*.jpg"))[:3])
    assert len(preds) == 3 and all(p.error is None for p in preds)
