"""Integration with real ImageNet weights (fetched by `make weights`) on a small real dataset:
scikit-image's faces versus non-faces photos in examples/faces."""

from pathlib import Path

import pytest

import headstart
from tests.conftest import real_weights_store

FACES = Path(__file__).resolve().parents[1] / "examples" / "faces"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        real_weights_store() is None,
        reason="no real weights in the store: run `make weights` (headstart weights fetch mobilenetv2_100)",
    ),
]


def test_pretrained_transfer_beats_random_init(tmp_path):
    common = dict(model="mobilenetv2_100", image_size=96, device="cpu", verbose=False, seed=0)
    pretrained = headstart.fit(FACES, strategy="linear-probe", out=tmp_path / "pre", **common)
    scratch = headstart.fit(FACES, pretrained=False, epochs=8, out=tmp_path / "rand", **common)
    acc_pre, acc_rand = pretrained.metrics["accuracy"], scratch.metrics["accuracy"]
    assert pretrained.metrics["n_test"] == 30
    assert acc_pre >= 0.9, pretrained.metrics
    assert acc_pre >= acc_rand + 0.1, (acc_pre, acc_rand)
    # the saved run predicts what the in-memory model predicted
    faces = sorted((FACES / "face").iterdir())[:4]
    assert [p.labels for p in headstart.load(tmp_path / "pre").predict(faces)] == [p.labels for p in pretrained.predict(faces)]


def test_lp_ft_on_efficientnet_lite0(tmp_path):
    if not (real_weights_store() / "tf_efficientnet_lite0").is_dir():
        pytest.skip("tf_efficientnet_lite0 not in the store: headstart weights fetch tf_efficientnet_lite0")
    result = headstart.fit(FACES, model="tf_efficientnet_lite0", strategy="lp-ft", image_size=96, epochs=2,
                           probe_epochs=20, device="cpu", verbose=False, out=tmp_path / "lite0")
    assert [r["stage"] for r in result.history][-1] == "finetune"
    assert result.metrics["accuracy"] >= 0.9, result.metrics
