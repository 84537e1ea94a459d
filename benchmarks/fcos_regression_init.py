"""FCOS's regression-head init (issue 12): a short `headstart fit` with today's init and with
torchvision's (bias 0, which left tf_efficientnet_lite1 at 160 px at GIoU loss 1.0 and mAP 0.0).

    python benchmarks/detection_data.py --out /tmp/rankdet --n-train 160 --n-val 40 --n-test 80 --image-size 256
    OMP_NUM_THREADS=1 python benchmarks/fcos_regression_init.py --data /tmp/rankdet \
        --models tf_efficientnet_lite1 tf_efficientnet_lite0 --image-size 160 --epochs 1

Each fit is headstart's default FCOS recipe on the CPU (1 head epoch + ``--epochs``). The
``torchvision-init`` rows undo :func:`headstart.tasks.detection.models.init_fcos_regression` and
the collapse guard (so the run goes to its end). Saves, per run: the box-regression loss and val
mAP per epoch, test mAP, CPU seconds (process time) and wall seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path


def _fit(data: Path, model: str, image_size: int, epochs: int, init: str, out: Path) -> dict:
    import headstart
    import headstart.tasks.detection.models as models
    import headstart.tasks.detection.task as task

    keep_init, keep_check = models.init_fcos_regression, task.check_box_regression
    if init == "torchvision-init":
        models.init_fcos_regression = lambda model, bias=0.0: None
        task.check_box_regression = lambda losses, label: None
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        headstart.fit(str(data), model=model, image_size=image_size, epochs=epochs, out=str(out))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        models.init_fcos_regression, task.check_box_regression = keep_init, keep_check
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "model": model, "image_size": image_size, "init": init,
        "box_loss": [round(float(r["train_loss_bbox_regression"]), 4) for r in rows],
        "val_map": [round(float(r["val_map"]), 4) for r in rows],
        "test_map": round(metrics["map"], 4), "test_map50": round(metrics["map50"], 4),
        "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
    }


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--models", nargs="+", default=["tf_efficientnet_lite1"])
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/fcos_regression_init.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for init in ("torchvision-init", "headstart-init"):
                run = _fit(args.data, model, args.image_size, args.epochs, init, Path(tmp) / f"{model}-{init}")
                print(json.dumps(run), flush=True)
                runs.append(run)
    result = {"machine": f"{platform.machine()} CPU, 1 torch thread, shared with other jobs",
              "torch": torch.__version__, "data": str(args.data), "runs": runs}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
