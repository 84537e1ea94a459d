"""YOLO (Ultralytics, from its model YAML: random init, offline) against headstart's default
torchvision detector at about the same CPU time, on the glyphs-on-photos detection set
(benchmarks/detection_data.py). Both are scored by headstart's COCO evaluation on the test split
(unseen photo backgrounds), so the numbers compare directly.

    python benchmarks/detection_data.py --out /tmp/detsmall --n-train 240 --n-val 60 --n-test 120 --image-size 256
    python benchmarks/yolo.py --data /tmp/detsmall --cpu-budget 554 [--detector yolo11n] [--torchvision]
        [--results benchmarks/results/yolo.json]

``--cpu-budget``: CPU seconds to give YOLO (default: what headstart's default FCOS run cost on this
set, benchmarks/results/detection.json). A 1-epoch calibration run measures the cost of an epoch
(and the fixed cost: data, model, evaluation); the real run gets as many epochs as fit in the
budget, with its full schedule (no cut-off mid-schedule). ``--torchvision`` also runs headstart's
default detector (``--detector auto``: FCOS on mobilenetv2_100 with ImageNet weights) here; without
it the recorded E2 row of benchmarks/results/detection.json is the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_fit(data: Path, out: Path, **kwargs) -> dict:
    import headstart

    c0, w0 = _cpu(), time.perf_counter()
    result = headstart.fit(data, out=out, verbose=False, device="cpu", **kwargs)
    m = result.metrics
    row = {
        "kwargs": {k: v for k, v in kwargs.items() if k != "overrides"},
        "overrides": kwargs.get("overrides", []),
        "test_map": m["map"],
        "test_map50": m["map50"],
        "test_map75": m["map75"],
        "best_val_map": m.get("best_monitor_value"),
        "epochs_run": m.get("epochs_run"),
        "image_size": result.config.model.image_size,
        "cpu_s": round(_cpu() - c0, 1),
        "wall_s": round(time.perf_counter() - w0, 1),
        "run": str(out),
    }
    if "ultralytics" in m:
        row["ultralytics_test_map"] = m["ultralytics"].get("test_map")
        row["ultralytics_test_map50"] = m["ultralytics"].get("test_map50")
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/yolo-bench"))
    ap.add_argument("--detector", default="yolo11n")
    ap.add_argument("--cpu-budget", type=float, default=554.0)
    ap.add_argument("--image-size", default="256", help="pixels, or auto: headstart's rule from the data")
    ap.add_argument("--torchvision", action="store_true")
    ap.add_argument("--results", type=Path)
    args = ap.parse_args(argv)
    size = {} if args.image_size == "auto" else {"image_size": int(args.image_size)}
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = []
    calib = timed_fit(
        args.data,
        args.out / "calibration",
        detector=args.detector,
        epochs=1,
        **size,
        overrides=["train.patience=null"],
    )
    calib["recipe"] = f"{args.detector} calibration (1 epoch)"
    runs.append(calib)
    print(json.dumps(calib), flush=True)
    # the fixed cost (layout, model, headstart's and Ultralytics' evaluation) is paid once; take it as
    # a third of the calibration run, so the per-epoch estimate errs on the expensive side
    per_epoch = calib["cpu_s"] * 2 / 3
    epochs = max(2, int((args.cpu_budget - calib["cpu_s"] / 3) // per_epoch))
    row = timed_fit(
        args.data,
        args.out / "yolo",
        detector=args.detector,
        epochs=epochs,
        **size,
        overrides=["train.patience=null"],
    )
    row["recipe"] = f"{args.detector} from its YAML (random init), headstart's YOLO defaults, {epochs} epochs"
    runs.append(row)
    print(json.dumps(row), flush=True)
    if args.torchvision:
        tv = timed_fit(args.data, args.out / "torchvision", model="mobilenetv2_100", **size)
        tv["recipe"] = "headstart default (FCOS on mobilenetv2_100, ImageNet weights)"
        runs.append(tv)
        print(json.dumps(tv), flush=True)
    import ultralytics

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__},"
        f" ultralytics {ultralytics.__version__}, 1 thread",
        "command": "python benchmarks/yolo.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "cpu_budget_s": args.cpu_budget,
        "runs": runs,
    }
    if args.results:
        write_results(args.results, result)
    return result


def write_results(path: Path, result: dict) -> None:
    """``result`` as indented JSON at ``path`` (its folder made if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
