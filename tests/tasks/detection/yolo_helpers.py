"""Shared by the YOLO backend's tests: a tiny COCO dataset of coloured squares, a Python
``sitecustomize`` that blocks (and logs) every network connection or DNS lookup of a subprocess,
and one that makes ``import ultralytics`` fail as if the extra were not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco

REPO = Path(__file__).resolve().parents[3]

BLOCK_NETWORK = """
import os, socket
_LOG = os.environ["HEADSTART_TEST_NET_LOG"]

def _blocked(what, *args):
    with open(_LOG, "a") as fh:
        fh.write(f"{what} {args[:2]!r}\\n")
    raise OSError(f"network blocked by the test ({what})")

socket.socket.connect = lambda self, *a, **k: _blocked("connect", *a)
socket.socket.connect_ex = lambda self, *a, **k: _blocked("connect_ex", *a)
socket.create_connection = lambda *a, **k: _blocked("create_connection", *a)
socket.getaddrinfo = lambda *a, **k: _blocked("getaddrinfo", *a)
"""

BLOCK_ULTRALYTICS = """
import sys, importlib.abc
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ultralytics":
            raise ModuleNotFoundError("No module named 'ultralytics' (blocked by the test)", name="ultralytics")
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def write_squares(root: Path, n: int = 24, size: int = 64) -> Path:
    """``n`` images of ``size`` px with one or two red/blue squares, COCO layout with train/val/test."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        split = "train" if i < n * 0.6 else ("val" if i < n * 0.8 else "test")
        boxes = []
        for _ in range(1 + i % 2):
            side = int(rng.integers(size // 5, size // 3))
            x, y = int(rng.integers(0, size - side)), int(rng.integers(0, size - side))
            boxes.append(FixtureBox("red" if rng.random() < 0.5 else "blue", x, y, x + side, y + side))
        images.append(FixtureImage(f"im{i:02d}.png", boxes, split=split, size=(size, size)))
    write_coco(root, images, ["red", "blue"])
    return root


def cli(*args, tmp: Path, site: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``headstart ARGS`` in a subprocess with its own caches and weights store under ``tmp``; ``site``:
    the text of a sitecustomize.py to run first (BLOCK_NETWORK, BLOCK_ULTRALYTICS)."""
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "HEADSTART_WEIGHTS_DIR": str(tmp / "store"),
        "OMP_NUM_THREADS": "1",
        "HEADSTART_TEST_NET_LOG": str(tmp / "network.log"),
    }
    env.pop("YOLO_CONFIG_DIR", None)
    paths = [str(REPO / "src")]
    if site is not None:
        site_dir = tmp / "site"
        site_dir.mkdir(exist_ok=True)
        (site_dir / "sitecustomize.py").write_text(site, encoding="utf-8")
        paths.insert(0, str(site_dir))
    env["PYTHONPATH"] = os.pathsep.join(paths + [str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "headstart", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp,
    )
