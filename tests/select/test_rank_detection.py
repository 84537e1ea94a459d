"""`headstart rank` on a detection dataset: the table, the cache, the stride fit across input
sizes, `fit --model auto` using the ranking (saved or quick), and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import headstart
from headstart.errors import ConfigError
from headstart.select.rank import default_rank_dir, rank
from tests.data.detection.conftest import square_images, write_coco
from tests.select.test_rank import two_model_store  # noqa: F401  (fixture)

TINY = "test_resnet,test_efficientnet"


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    """20 images of 64x64 with one or two 12-24 px squares of two colours, COCO layout."""
    return write_coco(tmp_path_factory.mktemp("detrank"), square_images(20, 12, 4, seed=1), ["red", "blue"])


@pytest.fixture
def env(two_model_store, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(two_model_store))
    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "features"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_rank_detection_table_stride_fit_and_cache(env, det_data):
    table = rank(
        det_data,
        candidates=TINY + ",test_vit",
        image_sizes="64,32",
        device="cpu",
        budget="10m",
        out=env / "r",
        verbose=False,
    )
    assert {(r["model"], r["image_size"]) for r in table.rows} == {(m, s) for m in TINY.split(",") for s in (64, 32)}
    assert [r["combined"] for r in table.rows] == sorted((r["combined"] for r in table.rows), reverse=True)
    n_boxes = 12 + 6  # 12 training images, every second one with two boxes
    for r in table.rows:
        for key in ("logme", "hscore", "nleep", "linear_probe", "knn", "stride_fit", "images_per_s", "params_m"):
            assert r[key] is not None and np.isfinite(r[key]), key
        assert r["n_images"] == 12 and r["n_boxes"] == n_boxes and r["n_background"] >= 1
        assert r["predicted_relative_accuracy"] is None and not r["cache_hit"]
    # 12-24 px boxes fit a stride of 8 at 64 px; at 32 px they shrink to 6-12 px and some do not
    fit = {(r["model"], r["image_size"]): r["stride_fit"] for r in table.rows}
    for m in TINY.split(","):
        assert fit[(m, 64)] == 1.0 and fit[(m, 32)] < 1.0
    assert {s["model"] for s in table.skipped} == {"test_vit"}
    saved = json.loads((env / "r" / "rank.json").read_text())
    assert saved["task"] == "detect" and saved["weights"]["stride_fit"] == 1.0 and saved["dataset"]["fingerprint"]
    assert (env / "r" / "rank.png").is_file() and "stride_fit" in (env / "r" / "rank.csv").read_text()
    assert "stride fit" in str(table) and f"{n_boxes} boxes" in str(table)
    # the second ranking reads every candidate's box features from the cache, with the same scores
    again = rank(
        det_data, candidates=TINY, image_sizes="64,32", device="cpu", budget="10m", out=env / "r2", verbose=False
    )
    assert all(r["cache_hit"] for r in again.rows)
    assert {(r["model"], r["image_size"]): r["logme"] for r in again.rows} == pytest.approx(
        {(r["model"], r["image_size"]): r["logme"] for r in table.rows}
    )


def test_rank_detection_estimator_subset_and_bad_size(env, det_data):
    table = rank(
        det_data,
        candidates="test_resnet",
        image_sizes=[48],
        estimators=["logme"],
        device="cpu",
        out=env / "one",
        verbose=False,
    )
    assert len(table.rows) == 1 and table.rows[0]["logme"] is not None and "knn" not in table.rows[0]
    with pytest.raises(ConfigError, match=r"'image_sizes' parameter must hold ints in \[16, 1024\]. Got '8'"):
        rank(det_data, candidates="test_resnet", image_sizes="8", device="cpu", verbose=False)


FIT = dict(
    task="detect",
    image_size=64,
    batch_size=4,
    epochs=1,
    device="cpu",
    verbose=False,
    overrides=["detect.fpn_channels=64", "detect.head_epochs=1"],
)


def test_fit_auto_on_detection_uses_the_saved_ranking(env, det_data, capsys):
    table = rank(det_data, candidates=TINY, image_sizes="64", device="cpu", verbose=False)
    assert (default_rank_dir(det_data) / "rank.json").is_file()
    result = headstart.fit(det_data, model="auto", out=env / "run", **FIT)
    assert result.config.model.name == table.best["model"]
    assert table.best["model"] in (env / "run" / "config.yaml").read_text()


def test_fit_auto_on_detection_ranks_the_offline_candidates(env, det_data, monkeypatch):
    import headstart.models.zoo as zoo

    # the curated list, as the two tiny models of the test store (both with offline weights)
    monkeypatch.setattr(
        zoo, "candidates", lambda device="cpu": tuple(zoo.Candidate(n, "", 0.1, 0.0, 64, 64) for n in TINY.split(","))
    )
    result = headstart.fit(det_data, model="auto", out=env / "run", **FIT)
    quick = json.loads((env / "run" / "rank" / "rank.json").read_text())
    assert quick["task"] == "detect" and len(quick["rows"]) == 2
    assert result.config.model.name == quick["rows"][0]["model"]
    assert all(r["image_size"] == 64 for r in quick["rows"])  # ranked at the size fit uses


@pytest.mark.slow  # two interpreters importing torch: 20-60 s on the shared 2-core CPU
def test_rank_cli_on_detection_data(env, det_data):
    cmd = [
        sys.executable,
        "-m",
        "headstart",
        "rank",
        str(det_data),
        "--candidates",
        TINY,
        "--image-sizes",
        "64",
        "--device",
        "cpu",
        "--out",
        str(env / "cli"),
        "--quiet",
    ]
    run_env = {**os.environ, "PYTHONPATH": str(Path(headstart.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{env / 'cli'}/rank.json"
    rows = json.loads((env / "cli" / "rank.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["stride_fit"] == 1.0 for r in rows)
    bad = subprocess.run(
        cmd[:8] + ["64,abc", "--device", "cpu", "--out", str(env / "bad")],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=300,
    )
    assert bad.returncode != 0 and "image_sizes" in bad.stderr and "'abc'" in bad.stderr


def test_quick_rank_over_its_budget_falls_back_with_the_reason(env, det_data, monkeypatch):
    import headstart.models.zoo as zoo
    import headstart.select.auto as auto
    from headstart.data.detection import load_detection_dataset
    from headstart.engine.device import resolve_device

    monkeypatch.setattr(
        zoo, "candidates", lambda device="cpu": tuple(zoo.Candidate(n, "", 0.1, 0.0, 64, 64) for n in TINY.split(","))
    )
    monkeypatch.setattr(auto, "QUICK_BUDGET", "0.001s")
    cfg = headstart.build_config(det_data, task="detect", model="auto", image_size=64)
    name, size, reason = auto.choose_detection_backbone(
        cfg, load_detection_dataset(det_data), resolve_device("cpu"), env / "run", False
    )
    assert (name, size) == ("mobilenetv2_100", None)
    assert "the quick rank did not run: The budget of 0.001s is too small" in reason
