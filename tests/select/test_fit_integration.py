"""fit --model auto through a saved ranking, and fit's linear probe reading the feature cache."""

import json

import pytest

import headstart
from headstart.select.feature_cache import FeatureCache
from headstart.select.rank import default_rank_dir, rank
from tests.select.test_rank import two_model_store  # noqa: F401  (fixture)


@pytest.fixture
def env(two_model_store, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(two_model_store))
    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "features"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


FIT = dict(image_size=32, batch_size=8, epochs=1, probe_epochs=2, strategy="lp-ft", device="cpu", verbose=False)


def test_fit_auto_uses_saved_ranking_and_cached_features(env, image_folder, capsys):
    table = rank(image_folder, candidates="test_resnet,test_efficientnet", image_sizes="32,40", device="cpu",
                 budget="5m", verbose=False)
    assert (default_rank_dir(image_folder) / "rank.json").is_file()
    best = table.best
    result = headstart.fit(image_folder, model="auto", out=env / "run", **{k: v for k, v in FIT.items() if k != "image_size"})
    assert result.config.model.name == best["model"]
    assert result.config.model.image_size == best["image_size"]
    # the probe stored its train/val features; a second fit is served from the cache
    cache = FeatureCache()
    before = {p: p.stat().st_mtime_ns for p in cache.root.rglob("*.safetensors")}
    assert len(before) >= 2
    again = headstart.fit(image_folder, model="auto", out=env / "run2", **{k: v for k, v in FIT.items() if k != "image_size"})
    after = {p: p.stat().st_mtime_ns for p in cache.root.rglob("*.safetensors")}
    assert after == before  # all hits: nothing rewritten, nothing added
    probe = [r for r in result.history if r["stage"] == again.history[0]["stage"]]
    assert [r["val_loss"] for r in probe] == pytest.approx([r["val_loss"] for r in again.history[: len(probe)]])


def test_saved_ranking_of_another_dataset_is_ignored(env, image_folder, tmp_path):
    rank(image_folder, candidates="test_resnet,test_efficientnet", image_sizes="32", device="cpu", budget="5m",
         verbose=False)
    path = default_rank_dir(image_folder) / "rank.json"
    data = json.loads(path.read_text())
    data["dataset"]["fingerprint"] = "0" * 64
    data["rows"][0]["model"] = "test_vit"  # would fail if it were used
    path.write_text(json.dumps(data))
    from headstart.config import build_config
    from headstart.data.index import load_dataset
    from headstart.select.auto import _saved_ranking

    cfg = build_config(image_folder)
    assert _saved_ranking(cfg, load_dataset(cfg.data, seed=0)) is None
