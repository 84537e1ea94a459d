"""The study's progress in a log (stderr not a terminal): one plain line per finished trial, as it finishes."""

from __future__ import annotations

import io
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
from rich.console import Console

from headstart.tuning.progress import Progress, format_params
from tests.tuning.conftest import FAST

PARAMS = {"strategy": "lp-ft", "lr": 0.000123456, "probe_lr": 0.001, "batch_size": 32, "weight_decay": 0.05,
          "epochs": 12, "layer_decay": 0.75, "augment": "medium", "augment_strength": 1.0, "label_smoothing": 0.1}


def _trial(number, state, value=None, minutes=16.0, params=PARAMS, **attrs):
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), value=value, params=dict(params),
                           duration=timedelta(minutes=minutes), user_attrs=attrs, intermediate_values={1: 0.1})


class _Study:
    def __init__(self):
        self.trials = []

    def get_trials(self, deepcopy=False):
        return list(self.trials)

    @property
    def best_trial(self):
        done = [t for t in self.trials if t.state.name == "COMPLETE"]
        if not done:
            raise ValueError("no completed trial")
        return max(done, key=lambda t: t.value)


class _Log(io.StringIO):
    """A log file: not a terminal; remembers what had been flushed."""

    flushed = ""

    def isatty(self):
        return False

    def flush(self):
        super().flush()
        self.flushed = self.getvalue()


def test_format_params_is_brief():
    assert format_params({"lr": 0.000123456, "epochs": 12, "augment": "medium"}) == "lr=0.000123 epochs=12 augment=medium"


def test_a_log_gets_one_plain_flushed_line_per_finished_trial():
    log = _Log()
    console = Console(file=log, width=80, highlight=False)
    assert not console.is_terminal
    progress = Progress(console, "val_accuracy", budget=20, deadline=None)
    study = _Study()
    study.trials.append(_trial(0, "RUNNING"))
    progress.update(study)
    assert log.getvalue() == ""  # nothing finished yet

    study.trials[0] = _trial(0, "COMPLETE", 0.8123)
    progress.update(study)
    progress.update(study)  # nothing new: nothing printed again
    lines = log.flushed.splitlines()
    assert len(lines) == 1, lines  # one line however long (no wrapping at the console's 80 columns)
    line = lines[0]
    assert line.startswith("trial   0 complete val_accuracy 0.8123 (16m00s) | strategy=lp-ft lr=0.000123 ")
    assert "batch_size=32" in line and "label_smoothing=0.1" in line
    assert "| 1/20 done (0 pruned, 0 failed) | best 0.8123 (trial 0) |" in line
    assert "\x1b" not in log.getvalue()  # plain text

    study.trials += [_trial(1, "PRUNED", minutes=2, params={"lr": 0.5}), _trial(2, "FAIL", minutes=0.1, params={},
                                                                                fail_reason="CUDA out of memory")]
    progress.update(study)
    lines = log.flushed.splitlines()
    assert len(lines) == 3, lines
    assert lines[1].startswith("trial   1 pruned   after 1 backbone epoch(s) (2m00s) | lr=0.5 | 3/20 done (1 pruned,")
    assert lines[2].startswith("trial   2 fail     CUDA out of memory (6s) | 3/20 done")
    assert all("best 0.8123 (trial 0)" in line for line in lines)


def test_tune_logs_the_header_and_each_trial_before_the_next_starts(image_folder, weights_env, tmp_path, monkeypatch):
    """A tiny real study with stderr a log file: what was flushed when each trial started."""
    pytest.importorskip("optuna")
    import headstart
    from headstart.tuning.objective import Objective

    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    flushed_at_start = []
    call = Objective.__call__

    def spy(self, trial):
        flushed_at_start.append(log.flushed)
        return call(self, trial)

    monkeypatch.setattr(Objective, "__call__", spy)
    space = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}
    headstart.tune(image_folder, space=space, trials=2, sampler="random", out=tmp_path / "study", final=False,
                   verbose=True, **FAST)
    monkeypatch.undo()
    assert len(flushed_at_start) == 2
    assert "study 'study': random sampler" in flushed_at_start[0]  # the header, before the first trial
    first = [line for line in flushed_at_start[1].splitlines() if line.startswith("trial")]
    assert len(first) == 1 and first[0].startswith("trial   0 complete val_accuracy ")
    assert " | lr=" in first[0] and "best " in first[0]
    assert "\x1b" not in log.getvalue()
