"""Distributed training on a CPU (gloo): what it costs, not a speed-up.

Three fits of the same tiny classification run (``test_convnext`` random init, 32 px, 400
synthetic images, full fine-tuning, batch 32, ``--augment none``):

* ``single``: one process, this checkout's source (single-process speed must not change);
* ``single_main``: the same with the source of ``--main-src`` (another checkout, e.g. main), when
  given, for the before/after comparison;
* ``devices2``: ``--devices 2`` (2 gloo processes started by torch's elastic launcher).

Each runs as a subprocess (``python -m headstart fit``); wall time and the CPU time of the process
and its children (``resource.getrusage(RUSAGE_CHILDREN)``) are recorded, with the history's
per-epoch training throughput. On a 2-core machine shared with other jobs two processes do not
run faster than one: the numbers show the launcher's and the collectives' overhead; GPU scaling
needs a GPU.

    python benchmarks/distributed_cpu.py [--epochs 3] [--main-src /work/main/src]

Writes benchmarks/results/distributed_cpu.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fit(src: Path, data: Path, out: Path, epochs: int, devices: int) -> dict:
    args = [sys.executable, "-m", "headstart", "fit", str(data), "--model", "test_convnext", "--no-pretrained",
            "--image-size", "32", "--batch-size", "32", "--strategy", "full", "--augment", "none", "--epochs",
            str(epochs), "--device", "cpu", "--out", str(out), "--quiet", "train.patience=null"]  # fmt: skip
    if devices > 1:
        args += ["--devices", str(devices)]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = list(csv.DictReader(open(out / "history.csv")))
    metrics = json.loads((out / "metrics.json").read_text())
    return {"devices": devices, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "train_images_per_s": [round(float(r["images_per_s"]), 1) for r in rows],
            "epoch_s": [round(float(r["time"]), 2) for r in rows],
            "train_loss": [round(float(r["train_loss"]), 5) for r in rows], "accuracy": metrics["accuracy"]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--main-src", type=Path, default=None)
    args = p.parse_args()
    from tests.conftest import write_synthetic_folder

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        per = args.images // 4
        data = write_synthetic_folder(tmp / "imgs", {"a": per, "b": per, "c": per, "d": per}, size=32)
        results = {"single": _fit(ROOT / "src", data, tmp / "single", args.epochs, 1)}
        if args.main_src is not None:
            results["single_main"] = _fit(args.main_src, data, tmp / "main", args.epochs, 1)
        results["devices2"] = _fit(ROOT / "src", data, tmp / "ddp", args.epochs, 2)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
           "command": "python benchmarks/distributed_cpu.py " + " ".join(sys.argv[1:]),
           "images": args.images, "epochs": args.epochs, "results": results}  # fmt: skip
    path = ROOT / "benchmarks" / "results" / "distributed_cpu.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
