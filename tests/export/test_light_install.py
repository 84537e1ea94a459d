"""The light install predicts: `headstart predict model.onnx` with only onnxruntime, Pillow, numpy,
pydantic and PyYAML, first in a Python whose heavy imports fail, then (slow) in a real venv made by
`pip install 'headstart[predict]'` from this checkout, where torch is not installed at all."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.light_install import light_cli

REPO = Path(__file__).resolve().parents[2]


def _reference_top1(run_dir: Path, images: Path) -> list[tuple[str, str]]:
    from headstart.predict import Predictor

    return [(p.path, p.labels[0]) for p in Predictor.from_run(run_dir).predict([images])]


def test_light_cli_predicts_onnx_and_refuses_to_train(tiny_run, tiny_exports, tiny_images, tmp_path):
    onnx_path = tiny_run / "export" / "model.onnx"
    proc = light_cli("--help")
    assert proc.returncode == 0 and "predict" in proc.stdout, proc.stderr

    proc = light_cli("predict", onnx_path, tiny_images, "--format", "json", "--batch-size", "10")
    assert proc.returncode == 0, proc.stderr
    got = [(p["path"], p["label"]) for p in json.loads(proc.stdout)]
    assert len(got) == 48 and got == _reference_top1(tiny_run, tiny_images)

    proc = light_cli("fit", tiny_images, "--out", tmp_path / "run")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"`headstart fit` needs the 'train' extra \(not installed: torch, .*\)\. Install it with: pip"
                     r" install 'headstart\[train\]'\.", proc.stderr), proc.stderr
    assert not (tmp_path / "run").exists()

    # A run folder (or a TorchScript file) needs torch: the hint points at the .onnx route too.
    for model in (tiny_run, tiny_run / "export" / "model.ts"):
        proc = light_cli("predict", model, tiny_images)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert re.search(r"A run folder or a TorchScript file needs 'torch', which is not installed\. Install it with:"
                         r" pip install 'headstart\[train\]' .*needs only 'headstart\[predict\]'", proc.stderr)


# pip's messages when the registry cannot be reached (the test then skips; it never fails for network reasons)
NETWORK_ERRORS = ("Failed to establish a new connection", "Temporary failure in name resolution", "Network is unreachable",
                  "Max retries exceeded", "ConnectionError", "ReadTimeoutError", "Could not fetch URL",
                  "No connection could be made", "ProxyError", "SSLError")


def _copy_project(dest: Path) -> Path:
    """pyproject.toml, README.md and src/ of this checkout (pip builds there, not in the repo)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


@pytest.mark.slow
def test_real_venv_predict_install_has_no_torch(tiny_run, tiny_exports, tiny_images, tmp_path):
    started = time.perf_counter()
    project = _copy_project(tmp_path / "project")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # --retries/--timeout: fail fast (and skip) when the registry is unreachable, instead of minutes of retries
    pip = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--retries", "1", "--timeout",
                          "20", f"{project}[predict]"], capture_output=True, text=True, timeout=600, env=env)
    if pip.returncode != 0 and any(msg in pip.stderr + pip.stdout for msg in NETWORK_ERRORS):
        pytest.skip(f"pip cannot reach the package registry: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr
    installed_s = time.perf_counter() - started

    def venv_run(*args):
        return subprocess.run([*map(str, args)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)

    names = {line.split("==")[0].lower() for line in venv_run(bin_dir / "python", "-m", "pip", "freeze").stdout.split()}
    assert {"headstart", "onnxruntime", "numpy", "pillow", "pydantic", "pyyaml"} <= names
    assert not names & {"torch", "torchvision", "timm", "scikit-learn", "matplotlib", "safetensors"}, sorted(names)
    proc = venv_run(bin_dir / "python", "-c", "import torch")
    assert proc.returncode == 1 and "No module named 'torch'" in proc.stderr
    proc = venv_run(bin_dir / "python", "-c", "import headstart; print(headstart.__file__)")
    assert proc.returncode == 0 and str(venv) in proc.stdout, proc.stdout + proc.stderr  # not this checkout

    proc = venv_run(bin_dir / "headstart", "predict", tiny_run / "export" / "model.onnx", tiny_images, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = [(p["path"], p["label"]) for p in json.loads(proc.stdout)]
    assert len(got) == 48 and got == _reference_top1(tiny_run, tiny_images)

    proc = venv_run(bin_dir / "headstart", "fit", tiny_images, "--out", tmp_path / "run")
    assert proc.returncode == 1 and "pip install 'headstart[train]'" in proc.stderr, proc.stderr
    print(f"light venv: install {installed_s:.1f} s, total {time.perf_counter() - started:.1f} s")
