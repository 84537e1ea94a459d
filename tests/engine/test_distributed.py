"""Training on several processes (torch.distributed, gloo on the CPU, 2 ranks): the same history as
one process with the same global batch, every evaluation image counted once, a crashing rank named,
a run killed on all ranks resumed, and the run folder written once by rank 0.

Equivalence needs every random draw to be the same in both runs: the model (``test_convnext``)
has no BatchNorm (LayerNorm is per sample) and no dropout or drop-path, and augmentation is off
(``--augment none``), so the only difference left is the order of float additions in the
gradient average (DDP) -- hence a float tolerance."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import headstart
from headstart.engine import distributed
from headstart.errors import ConfigError
from tests.conftest import write_synthetic_folder

# 44 training images (even: no padding), 2 steps of 32 per epoch; val and test splits of 9 (odd)
COUNTS = {"cat": 21, "dog": 21, "fox": 20}
ARGS = dict(
    model="test_convnext",
    pretrained=False,
    image_size=32,
    batch_size=32,
    strategy="full",
    augment="none",
    lr=2e-3,
    patience=None,
    device="cpu",
)
CLI = [
    "--model",
    "test_convnext",
    "--no-pretrained",
    "--image-size",
    "32",
    "--batch-size",
    "32",
    "--strategy",
    "full",
    "--augment",
    "none",
    "--lr",
    "2e-3",
    "--device",
    "cpu",
    "train.patience=null",
]
EPOCHS = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp("ddp") / "imgs", COUNTS, size=32)


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory):
    """One process, batch 32."""
    return headstart.fit(folder, out=tmp_path_factory.mktemp("ref") / "run", epochs=EPOCHS, verbose=False, **ARGS)


def _cli(*args, check=True, timeout=600, **popen):
    proc = subprocess.run(
        [sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True, timeout=timeout, **popen
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def _history(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _assert_same_history(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        for key, value in b.items():
            if key in ("time", "images_per_s"):
                continue
            if key in ("stage", "epoch", "stage_epoch"):
                assert str(a[key]) == str(value), key
            else:
                assert float(a[key]) == pytest.approx(float(value), abs=2e-4, rel=1e-4), (key, a, b)


# ---------------------------------------------------------------------------------------------- no processes
def test_per_device_batch_must_divide():
    assert distributed.per_device_batch(32, 2) == 16
    with pytest.raises(
        ConfigError,
        match=r"'train.batch_size' parameter \(33\) is the global batch and must divide"
        r" evenly among the 2 devices. Use a multiple of 2, such as 32 or 34",
    ):
        distributed.per_device_batch(33, 2)


def test_devices_and_batch_are_checked_before_any_work(folder, tmp_path):
    with pytest.raises(ConfigError, match=r"\(33\) is the global batch and must divide evenly among the 2 devices"):
        headstart.fit(folder, out=tmp_path / "a", **{**ARGS, "batch_size": 33}, devices=2, verbose=False)
    assert not (tmp_path / "a" / "config.yaml").exists()
    with pytest.raises(ConfigError, match=r"Python callbacks cannot be sent to the 2 worker processes"):
        headstart.fit(folder, out=tmp_path / "b", **ARGS, devices=2, callbacks=[object()], verbose=False)
    with pytest.raises(
        ConfigError, match=r"'train.devices' parameter is invalid .*must be an int in \[1, inf\) or 'auto'"
    ):
        headstart.build_config(folder, devices=0)


def test_one_process_is_rank_0_of_1_and_collectives_are_identities():
    w = distributed.world()
    assert (w.rank, w.size, w.is_main, w.is_distributed) == (0, 1, True, False)
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object(5) == 5
    assert distributed.all_reduce_sum([1, 2.5]) == [1.0, 2.5]
    assert distributed.on_main(lambda: "x") == "x"
    assert distributed.interleave([[0, 2, 4], [1, 3]]) == [0, 1, 2, 3, 4]


def test_failure_summary_names_the_rank_that_caused_it():
    class F:
        def __init__(self, message, timestamp, exitcode=1):
            self.message, self.timestamp, self.exitcode = message, timestamp, exitcode

    failures = {
        0: F("RuntimeError: Connection closed by peer [127.0.0.1]:1234", 10),
        1: F({"message": "ValueError: bad label 7", "extraInfo": {}}, 10),
    }
    assert distributed._failure_summary(failures, 2) == (
        "Rank 1 of 2 failed: ValueError: bad label 7 (then rank(s) 0 stopped as well)"
    )
    assert distributed._failure_summary({3: F("Signal 9 (SIGKILL) received by PID 1", 5, -9)}, 4) == (
        "Rank 3 of 4 failed: Signal 9 (SIGKILL) received by PID 1"
    )


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HEADSTART_DIST_TIMEOUT", "90")
    assert distributed.timeout_seconds() == 90
    monkeypatch.setenv("HEADSTART_DIST_TIMEOUT", "soon")
    with pytest.raises(Exception, match=r"HEADSTART_DIST_TIMEOUT='soon' must be a number of seconds > 0"):
        distributed.timeout_seconds()


# ---------------------------------------------------------------------------------------------- 2 processes
@pytest.mark.slow
def test_two_ranks_match_one_process_and_write_one_complete_run_folder(folder, reference, tmp_path):
    out = tmp_path / "ddp"
    proc = _cli("fit", folder, *CLI, "--epochs", EPOCHS, "--devices", "2", "--out", out)
    assert proc.stdout.splitlines()[-1] == str(out) and proc.stdout.count(str(out)) == 1  # said once, by rank 0
    assert proc.stderr.count("test: accuracy") == 1  # the other rank is quiet
    for rel in (
        "config.yaml",
        "split.json",
        "history.csv",
        "metrics.json",
        "predictions.csv",
        "report.html",
        "plots/learning_curves.png",
        "plots/confusion_matrix.png",
        "model/model.safetensors",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (out / rel).is_file(), rel
    assert headstart.build_config(config=out / "config.yaml").train.devices == 2  # the world size
    _assert_same_history(_history(out / "history.csv"), _history(reference.run_dir / "history.csv"))
    # the odd-sized test split: every image counted once, with the predictions of one process
    got, want = json.loads((out / "metrics.json").read_text()), reference.metrics
    assert got["n_test"] == want["n_test"] == 9
    assert got["confusion_matrix"] == want["confusion_matrix"] and sum(map(sum, got["confusion_matrix"])) == 9
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [r["path"] for r in rows] == [r["path"] for r in csv.DictReader(open(reference.run_dir / "predictions.csv"))]
    assert len({r["path"] for r in rows}) == 9
    loaded = headstart.load(out)
    some = sorted((folder / "dog").iterdir())[:2]
    for a, b in zip(loaded.predict(some), reference.predict(some)):
        assert a.probs == pytest.approx(b.probs, abs=1e-3)


def _last_epoch(path) -> int:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)["state"]
    return len(state["history"])


@pytest.mark.slow
def test_a_run_killed_on_all_ranks_resumes_to_the_uninterrupted_metrics(folder, reference, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "headstart",
            "fit",
            str(folder),
            *CLI,
            "--epochs",
            str(EPOCHS),
            "--devices",
            "2",
            "--out",
            str(out),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None and not (ckpt.is_file() and _last_epoch(ckpt) >= 2):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "metrics.json").exists()

    _cli("fit", "--resume", "--out", out, "--devices", "2", "--quiet")
    got = json.loads((out / "metrics.json").read_text())
    for key in ("confusion_matrix", "best_epoch", "n_test", "epochs_run"):
        assert got[key] == reference.metrics[key], key
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "best_monitor_value"):
        assert got[key] == pytest.approx(reference.metrics[key], abs=1e-4), key
    _assert_same_history(_history(out / "history.csv"), _history(reference.run_dir / "history.csv"))


class CrashOnRank:
    """A callback that raises on one rank at the end of an epoch."""

    def __init__(self, rank: int, epoch: int):
        self.rank, self.epoch = rank, epoch

    def __getattr__(self, hook):
        return lambda *a: None

    def on_epoch_end(self, trainer, row):
        if distributed.world().rank == self.rank and row["epoch"] == self.epoch:
            raise RuntimeError(f"rank {self.rank} crashed on purpose")


def fit_with_crash(data: str, out: str) -> None:
    """A worker (started by the launcher): fit under the environment's world, rank 1 crashing."""
    headstart.fit(data, out=out, epochs=EPOCHS, verbose=False, callbacks=[CrashOnRank(1, 2)], **ARGS)


@pytest.mark.slow
def test_a_crashing_rank_ends_the_run_with_an_error_naming_it(folder, tmp_path):
    code = (
        "import sys; from headstart.engine.distributed import launch; from tests.engine.test_distributed import"
        " fit_with_crash\ntry:\n    launch(fit_with_crash, (sys.argv[1], sys.argv[2]), 2)\nexcept Exception as e:\n"
        "    print(type(e).__name__, e); sys.exit(3)"
    )
    # bounded: a hang would be a TimeoutExpired, not a stuck test
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "HEADSTART_DIST_TIMEOUT": "120"},
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "DistributedError Rank 1 of 2 failed: RuntimeError: rank 1 crashed on purpose" in proc.stdout
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_torchrun_linear_probe_features_are_sharded_gathered_and_cached(folder, weights_env, tmp_path, monkeypatch):
    """Under torchrun (the environment gives the world), lp-ft's probe on 2 ranks: features
    extracted on half the images each and gathered, stored in rank's cache by rank 0, then read
    from it by rank 0 and broadcast; the probe's history is the single process's."""
    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "features"))
    common = ["--model", "test_resnet", "--image-size", "32", "--batch-size", "16", "--strategy", "lp-ft",
              "--epochs", "1", "--probe-epochs", "3", "--device", "cpu", "--quiet"]  # fmt: skip
    single = headstart.fit(folder, out=tmp_path / "one", model="test_resnet", image_size=32, batch_size=16,
                           strategy="lp-ft", epochs=1, probe_epochs=3, device="cpu", verbose=False)  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    for name in ("a", "b"):  # a: cache miss, extracted sharded; b: cache hit, broadcast by rank 0
        proc = subprocess.run([*torchrun, "-m", "headstart", "fit", str(folder), *common, "--out", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.splitlines()[-1] == str(tmp_path / name)
        probe = [r for r in _history(tmp_path / name / "history.csv") if r["stage"] == "probe"]
        _assert_same_history(probe, [r for r in single.history if r["stage"] == "probe"])
        assert headstart.build_config(config=tmp_path / name / "config.yaml").train.devices == 2
    assert len(list((tmp_path / "features").rglob("*.safetensors"))) == 2  # train and val, stored once


@pytest.mark.slow
def test_detection_trains_on_two_ranks_and_evaluates_every_image_once(tmp_path):
    """Detection on the same engine: head then full stages (two DDP wrappers), COCO evaluation of a
    test split of 5 images gathered from both ranks."""
    import numpy as np

    from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco

    rng = np.random.default_rng(0)
    images = []
    for i in range(19):
        split = "train" if i < 10 else ("val" if i < 14 else "test")
        side = int(rng.integers(12, 24))
        x, y = int(rng.integers(0, 64 - side)), int(rng.integers(0, 64 - side))
        box = FixtureBox("red" if i % 2 else "blue", x, y, x + side, y + side)
        images.append(FixtureImage(f"im{i:02d}.png", [box], split=split, size=(64, 64)))
    write_coco(tmp_path / "boxes", images, ["red", "blue"])
    out = tmp_path / "run"
    _cli("fit", tmp_path / "boxes", "--task", "detect", "--model", "test_resnet", "--no-pretrained", "--image-size", "64",
         "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--devices", "2", "--out", out, "--quiet",
         "detect.fpn_channels=64", "detect.head_epochs=1")  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n_images"] == 5 and metrics["n_boxes"] == 5  # each image once
    assert [r["stage"] for r in _history(out / "history.csv")] == ["head", "finetune"]
    assert headstart.build_config(config=out / "config.yaml").train.devices == 2
    assert (out / "predictions.json").is_file() and (out / "model" / "model.json").is_file()
