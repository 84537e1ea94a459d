"""`headstart tune` and `headstart fit --tune` through the command line: resume after a kill,
two worker processes on one PostgreSQL study, error messages."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.tuning.conftest import FAST_FLAGS

pytest.importorskip("optuna")


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _study(run_dir):
    import optuna

    from headstart.tuning.study import read_settings

    settings = read_settings(run_dir)
    return optuna.load_study(study_name=settings["study"], storage=settings["storage"])


def test_resume_after_kill_keeps_finished_trials(image_folder, weights_env, tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "headstart", "tune", str(image_folder), "--trials", "5", "--out", str(out),
           "--no-final", "--quiet", *FAST_FLAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 240
        complete = 0
        while time.time() < deadline and proc.poll() is None:
            if (out / "study.db").is_file():
                try:
                    with sqlite3.connect(out / "study.db", timeout=5) as db:
                        complete = db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
                except sqlite3.OperationalError:
                    complete = 0  # tables not created yet
                if complete >= 1:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, "the study finished before it could be killed"
        assert complete >= 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {t.number: t.value for t in _study(out).get_trials() if t.state.name == "COMPLETE"}
    assert before

    res = _cli("tune", "--resume", out, "--no-final")
    assert res.returncode == 0, res.stderr
    trials = _study(out).get_trials()
    after = {t.number: t.value for t in trials if t.state.name == "COMPLETE"}
    assert all(after[n] == v for n, v in before.items())  # finished trials kept, unchanged
    finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("interrupted")]
    # the budget counts finished trials; interrupted ones are run again
    assert len(finished) == 5, [(t.number, t.state.name, t.user_attrs.get("interrupted")) for t in trials]
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) <= 1
    for t in [t for t in interrupted if t.params]:  # its params were queued again and ran
        assert any(u.user_attrs.get("requeued_from") == t.number and u.state.is_finished() for u in trials)
    assert (out / "best.yaml").is_file()


def test_two_workers_share_one_postgresql_study(image_folder, weights_env, tmp_path, postgres_url):
    out = tmp_path / "study"
    res = _cli("tune", image_folder, "--storage", postgres_url, "--study", "flowers", "--workers", "2", "--trials",
               "4", "--out", out, "--sampler", "random", "--no-final", *FAST_FLAGS)
    assert res.returncode == 0, res.stderr
    assert "sqlite" not in (out / "tune.json").read_text()
    trials = _study(out).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # none lost, none duplicated
    assert all(t.state.is_finished() for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial-{n:04d}" for n in range(4)]
    assert trials[0].user_attrs.get("default") is True


def test_cli_errors(image_folder, tmp_path):
    res = _cli("tune", image_folder, "--timeout", "20 minutes", "--out", tmp_path / "s")
    assert res.returncode == 2 and "'timeout' parameter must be a duration like '90s'" in res.stderr
    res = _cli("tune", image_folder, "--sampler", "bayes", "--out", tmp_path / "s")
    assert res.returncode == 2 and "'sampler' parameter must be one of {'tpe', 'random', 'grid', 'cmaes'}" in res.stderr
    space = tmp_path / "space.yaml"
    space.write_text("lr: {low: 0.1, high: 0.001}\n")
    res = _cli("tune", image_folder, "--space", space, "--out", tmp_path / "s")
    assert res.returncode == 2 and "low > high" in res.stderr
    res = _cli("tune")
    assert res.returncode == 2 and "needs a dataset" in res.stderr
    res = _cli("fit", image_folder, "--tune", "soon")
    assert res.returncode == 2 and "'tune' parameter must be a duration" in res.stderr


def test_fit_with_tune_trains_the_best_config(image_folder, weights_env, tmp_path):
    out = tmp_path / "run"
    res = _cli("fit", image_folder, "--tune", "1s", "--out", out, "--quiet", *FAST_FLAGS)
    assert res.returncode == 0, res.stderr
    import headstart

    loaded = headstart.load(out)
    assert (out / "tune" / "best.yaml").is_file() and (out / "model" / "model.safetensors").is_file()
    assert loaded.config.out == out
