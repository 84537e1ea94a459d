"""Studies on a tiny model and synthetic data: each sampler, pruning, failed trials, outputs."""

from __future__ import annotations

import csv

import pytest

import headstart
import headstart.workflows.fit
from headstart.config import build_config, load_yaml
from headstart.errors import ConfigError, RunFolderError
from tests.tuning.conftest import FAST

pytest.importorskip("optuna")

SPACE = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "weight_decay": {"low": 1e-4, "high": 0.1, "log": True}}


def _load(run_dir):
    import optuna

    import headstart.tuning.study as st

    settings = st.read_settings(run_dir)
    return optuna.load_study(study_name=settings["study"], storage=settings["storage"])


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes"])
def test_four_trial_study_with_each_sampler(sampler, image_folder, weights_env, tmp_path):
    out = tmp_path / "study"
    result = headstart.tune(image_folder, space=SPACE, trials=4, sampler=sampler, grid_points=2, out=out,
                            final=sampler == "tpe", verbose=False, **FAST)
    study = _load(out)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)
    assert result.counts["done"] == 4
    # the default config is the first trial: headstart's own weight decay, the lr sampled (its default is outside)
    assert trials[0].user_attrs["default"] is True and trials[0].params["weight_decay"] == 0.05
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    best = study.best_trial
    assert result.best_trial == best.number and result.best_value == best.value
    # best.yaml is a config `headstart fit --config` accepts, with the best params in it
    cfg = build_config(config=load_yaml(out / "best.yaml"))
    assert cfg.train.lr == pytest.approx(best.params["lr"]) and cfg.train.monitor == "val_accuracy"
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2, 3] and "param_lr" in rows[0]
    assert (out / "plots" / "history.png").is_file()
    if sampler == "tpe":
        assert {"importances.png", "parallel_coordinates.png"} <= {p.name for p in (out / "plots").iterdir()}
        loaded = headstart.load(out / "best")
        assert loaded.config.train.lr == pytest.approx(best.params["lr"])
        assert result.final.metrics["accuracy"] == loaded.metrics["accuracy"]


def test_bad_trial_is_pruned_by_the_median_pruner(image_folder, weights_env, tmp_path):
    # the default (lr 3e-3) completes first; lr 1e-9 never learns and falls below its median at epoch 2
    out = tmp_path / "study"
    fast = {**FAST, "epochs": 4, "lr": 3e-3}
    result = headstart.tune(image_folder, space={"lr": [3e-3, 1e-9]}, sampler="grid", trials=3, pruner="median",
                            out=out, final=False, verbose=False, **fast)
    states = {t.params["lr"]: t.state.name for t in _load(out).get_trials()}
    assert states[1e-9] == "PRUNED"
    assert result.counts["pruned"] == 1 and result.best_params["lr"] == 3e-3
    pruned = [t for t in _load(out).get_trials() if t.state.name == "PRUNED"][0]
    assert max(pruned.intermediate_values) < 4  # stopped before its last epoch


def test_failed_trials_are_recorded_and_the_study_goes_on(image_folder, weights_env, tmp_path, monkeypatch):
    from headstart.engine.trainer import Trainer

    step, fit = Trainer._optimizer_step, headstart.workflows.fit.fit

    def nan_at_lr_half(self, loss, *args):  # lr 0.5 makes the loss NaN, as a diverging run would
        return step(self, loss * float("nan") if self.cfg.lr == 0.5 else loss, *args)

    def oom_at_lr_quarter(*args, config=None, **kwargs):
        if config["train"]["lr"] == 0.25:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return fit(*args, config=config, **kwargs)

    monkeypatch.setattr(Trainer, "_optimizer_step", nan_at_lr_half)
    monkeypatch.setattr(headstart.workflows.fit, "fit", oom_at_lr_quarter)
    out = tmp_path / "study"
    result = headstart.tune(image_folder, space={"lr": [0.5, 0.25, 3e-3]}, sampler="grid", trials=4, out=out,
                            final=False, verbose=False, **{**FAST, "lr": 3e-3})
    trials = _load(out).get_trials()
    assert len(trials) == 4 and result.counts["failed"] == 2 and result.counts["complete"] == 2
    reasons = {t.params["lr"]: t.user_attrs.get("fail_reason", "") for t in trials if t.state.name == "FAIL"}
    assert reasons[0.5].startswith("diverged: The training loss became nan")
    assert reasons[0.25].startswith("out of memory")
    assert result.best_params["lr"] == 3e-3


def test_a_setup_error_stops_the_study(image_folder, weights_env, tmp_path):
    # not a trial's fault (a model without weights): every trial would fail the same way
    with pytest.raises(headstart.errors.WeightsNotFoundError):
        headstart.tune(image_folder, space=SPACE, trials=2, out=tmp_path / "s", verbose=False,
                       **{**FAST, "model": "mobilenetv3_small_050"})


def test_tune_argument_errors(image_folder, weights_env, tmp_path):
    with pytest.raises(ConfigError, match=r"'sampler' parameter must be one of .*Got 'grd'\. Did you mean 'grid'"):
        headstart.tune(image_folder, sampler="grd", out=tmp_path / "a", **FAST)
    with pytest.raises(ConfigError, match=r"'metric' parameter must be one of .*Got 'accuracy'"):
        headstart.tune(image_folder, metric="accuracy", out=tmp_path / "a", **FAST)
    with pytest.raises(ConfigError, match=r"'workers' parameter must be an int in \[1, inf\)\. Got 0"):
        headstart.tune(image_folder, workers=0, out=tmp_path / "a", **FAST)
    with pytest.raises(ConfigError, match=r"'timeout' parameter must be a duration like '90s'"):
        headstart.tune(image_folder, timeout="soon", out=tmp_path / "a", **FAST)
    with pytest.raises(RunFolderError, match="has no tune.json, so it is not a headstart tune folder"):
        headstart.tune(resume=tmp_path)


def test_a_study_folder_is_not_reused_without_resume(image_folder, weights_env, tmp_path):
    out = tmp_path / "study"
    headstart.tune(image_folder, space={"lr": [3e-3]}, trials=1, out=out, final=False, verbose=False, **FAST)
    with pytest.raises(RunFolderError, match=r"already holds a study\. Continue it with --resume"):
        headstart.tune(image_folder, space={"lr": [3e-3]}, trials=1, out=out, verbose=False, **FAST)
    # resume with a larger budget adds trials and keeps the first one
    result = headstart.tune(resume=out, trials=2, final=False, verbose=False)
    assert result.counts["done"] == 2


def test_plain_random_search_can_leave_out_the_default_trial(image_folder, weights_env, tmp_path):
    out = tmp_path / "plain"
    headstart.tune(image_folder, space=SPACE, trials=2, sampler="random", pruner="none", out=out, final=False,
                   verbose=False, default_trial=False, **{**FAST, "epochs": 1})
    trials = _load(out).get_trials()
    assert len(trials) == 2 and not any(t.user_attrs.get("default") for t in trials)
    assert all(t.params["weight_decay"] != 0.05 for t in trials)


def test_pruning_steps_count_backbone_epochs_only(image_folder, weights_env, tmp_path):
    """lp-ft: the probe's epochs on cached features are not reported, so step k is the k-th
    fine-tuning epoch, comparable with a full fine-tuning trial's epoch k."""
    out = tmp_path / "lpft"
    headstart.tune(image_folder, space=SPACE, sampler="random", trials=1, out=out, final=False, verbose=False,
                   **{**FAST, "strategy": "lp-ft", "probe_epochs": 3, "epochs": 2})
    (t,) = _load(out).get_trials()
    assert t.state.name == "COMPLETE" and sorted(t.intermediate_values) == [1, 2]


def test_a_one_point_grid_runs_that_point(image_folder, weights_env, tmp_path):
    out = tmp_path / "one"
    result = headstart.tune(image_folder, space={"lr": [3e-3]}, sampler="grid", out=out, final=False, verbose=False,
                            **FAST)
    trials = _load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] and trials[0].params == {"lr": 3e-3}
    assert result.best_params == {"lr": 3e-3}
