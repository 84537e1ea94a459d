"""Work that trials share instead of repeating: the backbone features of the linear probe (on-disk
feature cache) and the choice of ``model: auto`` (made once per study)."""

from __future__ import annotations

import pytest

import headstart
from headstart.config import load_yaml
from tests.tuning.conftest import FAST

pytest.importorskip("optuna")


def _count_calls(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that each call appends to the returned list."""
    original, calls = getattr(module, name), []

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_probe_trials_share_the_feature_cache(image_folder, weights_env, tmp_path, monkeypatch):
    import headstart.tasks.classification.task as loop

    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "features"))
    calls = _count_calls(monkeypatch, loop, "extract_features")
    out = tmp_path / "study"
    space = {"strategy": ["linear-probe", "lp-ft"], "probe_lr": [1e-2, 3e-2]}
    result = headstart.tune(image_folder, space=space, sampler="grid", trials=3, out=out, final=False, verbose=False,
                            **{**FAST, "strategy": "linear-probe"})
    assert result.counts["complete"] == 3
    assert {r["param_strategy"] for r in result.trials} == {"linear-probe", "lp-ft"}
    # the backbone ran over train and val once, in the first trial; the other probes read the cache
    assert len(calls) == 2
    assert len(list((tmp_path / "features").rglob("*.safetensors"))) == 2


def test_model_auto_is_chosen_once_for_the_study(image_folder, weights_env, tmp_path, monkeypatch):
    import headstart.select.auto as auto
    from headstart.select.rank import rank

    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "features"))
    monkeypatch.chdir(tmp_path)  # `headstart rank` and fit --model auto use runs/<data>-rank
    rank(image_folder, candidates="test_resnet", image_sizes="40", device="cpu", budget="5m", verbose=False)
    calls = _count_calls(monkeypatch, auto, "choose_by_rank")
    out = tmp_path / "study"
    fast = {k: v for k, v in FAST.items() if k not in ("model", "image_size")}
    # `model: auto` in the space too: it means the study's choice, not a new ranking per trial
    result = headstart.tune(image_folder, model="auto", space={"lr": [3e-3, 1e-3], "model": "auto"}, sampler="grid",
                            trials=3, out=out, final=False, verbose=False, **fast)
    assert len(calls) == 1 and result.counts["complete"] == 3
    for trial in sorted((out / "trials").iterdir()):
        cfg = load_yaml(trial / "config.yaml")
        assert (cfg["model"]["name"], cfg["model"]["image_size"]) == ("test_resnet", 40)  # the ranking's row
