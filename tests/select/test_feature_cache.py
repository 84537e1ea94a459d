import os
from pathlib import Path

import pytest
import torch

from headstart.data.index import Sample
from headstart.select.feature_cache import BoundFeatureCache, FeatureCache

PRE = {"input_size": 32, "interpolation": "bicubic", "crop_pct": 0.875}


@pytest.fixture
def samples(tmp_path):
    out = []
    for i in range(6):
        p = tmp_path / "imgs" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(bytes([i]) * 10)
        out.append(Sample(p, i % 2))
    return out


def _feats(n):
    return torch.arange(n * 4, dtype=torch.float32).reshape(n, 4), torch.arange(n) % 2


def test_hit_subset_and_reorder(tmp_path, samples):
    cache = FeatureCache(tmp_path / "cache")
    assert cache.get("m", "sha", PRE, samples) is None
    f, y = _feats(6)
    cache.put("m", "sha", PRE, samples, f, y)
    got_f, got_y = cache.get("m", "sha", PRE, samples)
    assert torch.equal(got_f, f) and torch.equal(got_y, y)
    # a subset in another order is served from the same entry
    sub = [samples[4], samples[1]]
    got_f, _ = cache.get("m", "sha", PRE, sub)
    assert torch.equal(got_f, f[[4, 1]])
    assert cache.hits == 2 and cache.misses == 1


def test_invalidation(tmp_path, samples):
    cache = FeatureCache(tmp_path / "cache")
    cache.put("m", "sha", PRE, samples, *_feats(6))
    assert cache.get("m", "other-sha", PRE, samples) is None  # other weights
    assert cache.get("m2", "sha", PRE, samples) is None  # other model
    assert cache.get("m", "sha", {**PRE, "input_size": 64}, samples) is None  # other size
    relabelled = [Sample(s.path, 1 - s.label) for s in samples]
    assert cache.get("m", "sha", PRE, relabelled) is None
    Path(samples[0].path).write_bytes(b"edited image, other size")
    os.utime(samples[0].path, ns=(1, 1))
    assert cache.get("m", "sha", PRE, samples) is None  # an image changed
    assert cache.get("m", "sha", PRE, samples[1:]) is not None  # the others are still valid


def test_corrupt_entry_is_a_miss_and_rebuilt(tmp_path, samples):
    cache = FeatureCache(tmp_path / "cache")
    file = cache.put("m", "sha", PRE, samples, *_feats(6))
    file.write_bytes(b"garbage")
    calls = []

    def compute():
        calls.append(1)
        return _feats(6)

    f, _, hit = cache.get_or_compute("m", "sha", PRE, samples, compute)
    assert not hit and calls == [1]
    _, _, hit = cache.get_or_compute("m", "sha", PRE, samples, compute)
    assert hit and calls == [1]


def test_bound_cache_used_by_name(tmp_path, samples):
    bound = BoundFeatureCache(FeatureCache(tmp_path / "c"), "m", "sha", PRE, {"train_eval": samples})
    f1, _ = bound.features("train_eval", lambda: _feats(6))
    f2, _ = bound.features("train_eval", lambda: pytest.fail("should come from the cache"))
    assert torch.equal(f1, f2)
    f3, _ = bound.features("test", lambda: _feats(2))  # not bound: computed
    assert len(f3) == 2


def test_default_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "feat"))
    assert FeatureCache().root == tmp_path / "feat"
