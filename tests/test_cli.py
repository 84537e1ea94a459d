"""The CLI, through a real subprocess, as a user runs it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

FAST = ["--model", "test_resnet", "--image-size", "32", "--batch-size", "8", "--device", "cpu", "--quiet"]


def run(args, env=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def test_help_lists_commands():
    out = run(["--help"]).stdout
    for cmd in ("fit", "predict", "weights"):
        assert cmd in out
    assert "--strategy" in run(["fit", "--help"]).stdout


def test_fit_then_predict_csv_and_json(image_folder, weights_env, tmp_path):
    env = {"HEADSTART_WEIGHTS_DIR": str(weights_env)}
    out = tmp_path / "run"
    proc = run(["fit", image_folder, *FAST, "--strategy", "lp-ft", "--epochs", "1", "--probe-epochs", "2",
                "--out", out, "train.label_smoothing=0.0", "augment.rotation=5"], env=env)
    assert proc.stdout.strip().endswith(str(out))
    assert "label_smoothing: 0.0" in (out / "config.yaml").read_text()
    csv_out = run(["predict", out, image_folder / "cat", "--top-k", "3", "--format", "csv"]).stdout.splitlines()
    assert csv_out[0] == "path,rank,label,prob,error" and len(csv_out) == 1 + 16 * 3
    preds = json.loads(run(["predict", out, image_folder / "dog" / "dog_000.png", "--format", "json"]).stdout)
    assert preds[0]["label"] in ("cat", "dog", "fox") and len(preds[0]["top_k"]) == 1
    target = tmp_path / "p.json"
    run(["predict", out, image_folder / "fox", "--format", "json", "-o", target])
    assert len(json.loads(target.read_text())) == 16


def test_fit_with_yaml_config_and_overrides(image_folder, weights_env, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data:\n  path: {image_folder}\nmodel:\n  name: test_resnet\n  image_size: 32\n"
                   f"train:\n  strategy: linear-probe\n  probe_epochs: 2\n  device: cpu\nout: {tmp_path / 'y'}\n")
    run(["fit", "--config", cfg, "train.probe_lr=3e-3", "--quiet"], env={"HEADSTART_WEIGHTS_DIR": str(weights_env)})
    text = (tmp_path / "y" / "config.yaml").read_text()
    assert "probe_lr: 0.003" in text and "strategy: linear-probe" in text


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["fit", "{data}", "--lr", "-1"], 2, "The 'train.lr' parameter must be a float in (0, inf) or null. Got -1."),
        (["fit", "{data}", "--augment", "lite"], 2, "Did you mean 'light'?"),
        (["fit", "{data}", "--model", "resnet5O"], 2, "Unknown model 'resnet5O'"),
        (["fit", "{data}", "train.lrr=1"], 2, "Unknown parameter 'train.lrr'. Did you mean 'train.lr'"),
        (["fit", "{tmp}/missing"], 1, "does not exist"),
        (["predict", "{tmp}/norun", "{data}"], 1, "The run folder"),
        (["predict", "{tmp}", "{data}", "--format", "xml"], 2, "The 'format' parameter must be one of {'table', 'csv', 'json'}. Got 'xml'."),
        (["weights", "import", "{tmp}/nofile.pth", "--model", "test_resnet"], 1, "nofile.pth"),
    ],
)
def test_cli_errors_are_clear(args, code, message, image_folder, tmp_path):
    args = [a.format(data=image_folder, tmp=tmp_path) for a in args]
    proc = run(args, env={"HEADSTART_WEIGHTS_DIR": str(tmp_path / "store")}, check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def _last_epoch(ckpt):
    try:
        return torch.load(ckpt, map_location="cpu", weights_only=True)["state"]["epoch"]
    except Exception:
        return -1


def test_kill_and_resume_matches_uninterrupted_run(image_folder, weights_env, tmp_path):
    env = {**os.environ, "HEADSTART_WEIGHTS_DIR": str(weights_env)}
    common = [*FAST, "--strategy", "full", "--epochs", "8", "--patience", "100"]
    run(["fit", image_folder, *common, "--out", tmp_path / "ref"], env=env)

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "headstart", "fit", str(image_folder), *common, "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (ckpt.is_file() and _last_epoch(ckpt) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "metrics.json").exists()

    run(["fit", "--resume", "--out", out, "--quiet"], env=env)
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    got = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "confusion_matrix", "best_epoch", "per_class"):
        assert got[key] == ref[key], key
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in rows]
    import csv
    read = lambda p: strip(list(csv.DictReader(open(p))))
    assert read(out / "history.csv") == read(tmp_path / "ref" / "history.csv")


def test_resume_with_arguments_it_would_ignore_says_so(image_folder, tmp_path):
    from headstart.config import build_config

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(build_config(image_folder, model="test_resnet", epochs=8, out=out).to_yaml())
    # the run's own dataset and a flag repeating its saved value are fine; the rest would be ignored
    proc = run(["fit", image_folder, "--resume", "--out", out, "--epochs", "8", "--lr", "0.1", "--strict",
                "train.seed=3", "--quiet"], check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"headstart fit: error: --resume continues the run in '{out}' with its saved config.yaml, so these arguments"
        " would be ignored: --strict, --lr 0.1, train.seed=3. Drop them, or start a new run with a different --out.\n")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]  # refused before doing anything


def test_fit_progress_in_a_log_is_one_line_per_event(image_folder, weights_env, tmp_path):
    """stderr to a file or pipe: one unwrapped line per epoch through the backbone, one summary line
    for the probe's cheap epochs (not one each), and the model line whole."""
    env = {"HEADSTART_WEIGHTS_DIR": str(weights_env)}
    verbose = [a for a in FAST if a != "--quiet"]
    proc = run(["fit", image_folder, *verbose, "--strategy", "lp-ft", "--epochs", "2", "--probe-epochs", "4",
                "--out", tmp_path / "run"], env=env)
    lines = proc.stderr.splitlines()
    assert len([ln for ln in lines if ln.startswith("epoch") and "[finetune]" in ln]) == 2
    assert not [ln for ln in lines if "[probe]" in ln]
    probe = [ln for ln in lines if ln.startswith("probe: 4 epochs on cached features")]
    assert len(probe) == 1 and "best epoch" in probe[0] and "val_loss" in probe[0]
    model = [ln for ln in lines if ln.startswith("model test_resnet")]
    assert len(model) == 1 and "strategy lp-ft" in model[0] and "device cpu" in model[0]
