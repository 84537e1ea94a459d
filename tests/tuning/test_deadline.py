"""The study's timeout holds inside a trial: a trial running at the deadline stops at the end of its
epoch. Time is moved through the study clock (``headstart.tuning.progress.now``), never slept on."""

from __future__ import annotations

import csv

import pytest

import headstart
import headstart.tuning.progress as clock
import headstart.workflows.fit
from tests.tuning.conftest import FAST

pytest.importorskip("optuna")


def _load(run_dir):
    import optuna

    from headstart.tuning.study import read_settings

    settings = read_settings(run_dir)
    return optuna.load_study(study_name=settings["study"], storage=settings["storage"])


@pytest.fixture
def epochs_run(monkeypatch):
    """The epoch numbers the Trainer ran, in every fit of the test (trials and final run)."""
    from headstart.engine.trainer import Trainer

    seen: list[int] = []
    run_epoch = Trainer._run_epoch

    def counting(self, stage):
        row = run_epoch(self, stage)
        seen.append(row["epoch"])
        return row

    monkeypatch.setattr(Trainer, "_run_epoch", counting)
    return seen


@pytest.mark.parametrize("epochs", [3, 1])
def test_deadline_passing_during_a_trial_stops_it_after_that_epoch(epochs, epochs_run, image_folder, weights_env,
                                                                   tmp_path, monkeypatch):
    real = clock.now
    # a 1 h study whose deadline has passed as soon as one epoch has run
    monkeypatch.setattr(clock, "now", lambda: real() + (10 * 3600.0 if epochs_run else 0.0))
    out = tmp_path / "study"
    result = headstart.tune(image_folder, space={"lr": [3e-3, 1e-3]}, sampler="grid", trials=3, timeout="1h",
                            out=out, final=True, verbose=False, **{**FAST, "epochs": epochs, "lr": 3e-3})
    trials = _load(out).get_trials()
    assert len(trials) == 1  # no trial started after the deadline, though the budget was 3
    t = trials[0]
    assert t.state.name == "COMPLETE" and t.user_attrs["default"] is True
    assert list(t.intermediate_values) == [1] and t.value == t.intermediate_values[1]
    assert t.user_attrs["epochs_run"] == 1 and result.best_value == t.value
    with open(out / "trials.csv") as f:
        row = next(csv.DictReader(f))
    if epochs > 1:  # cut short: marked, and the final run trains the best config in full (not part of the timeout)
        assert t.user_attrs["stopped"] == "timeout" and row["stopped"] == "timeout"
        assert [r["epoch"] for r in result.final.history] == [1, 2, 3]
        assert epochs_run == [1, 1, 2, 3]
    else:  # its only epoch was its last: nothing was cut short, the final run is the trial's own folder
        assert "stopped" not in t.user_attrs and row["stopped"] == ""
        assert epochs_run == [1] and len(result.final.history) == 1
    assert headstart.load(out / "best").config.train.epochs == epochs


def test_trial_reaching_the_deadline_before_its_first_epoch_is_pruned(epochs_run, image_folder, weights_env,
                                                                       tmp_path, monkeypatch):
    real, fit, fits = clock.now, headstart.workflows.fit.fit, []

    def fit_and_count(*args, **kwargs):
        fits.append(1)
        return fit(*args, **kwargs)

    # the deadline passes while the second trial sets up (after the worker started it)
    monkeypatch.setattr(headstart.workflows.fit, "fit", fit_and_count)
    monkeypatch.setattr(clock, "now", lambda: real() + (10 * 3600.0 if len(fits) >= 2 else 0.0))
    out = tmp_path / "study"
    result = headstart.tune(image_folder, space={"lr": [3e-3, 1e-3]}, sampler="grid", trials=3, timeout="1h",
                            out=out, final=False, verbose=False, **{**FAST, "lr": 3e-3})
    trials = _load(out).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert "stopped" not in trials[0].user_attrs
    assert trials[1].user_attrs["stopped"] == "timeout" and not trials[1].intermediate_values
    assert epochs_run == [1]  # the pruned trial trained nothing
    assert result.counts["pruned"] == 1 and result.best_trial == 0
