"""ONNX export of a YOLO run (Ultralytics' model from its YAML, random init, offline): a short run on
the glyphs-on-photos set (benchmarks/detection_data.py), ``headstart export`` with its parity check
(boxes matched to PyTorch's by IoU, the export's mAP on the test split against the run's), then the
per-image CPU time of the run folder's PyTorch predictor and of the ONNX file's box runtime.

    python benchmarks/detection_data.py --out /tmp/yolo-exp-data --n-train 120 --n-val 30 --n-test 40 --image-size 160
    python benchmarks/yolo_export.py --data /tmp/yolo-exp-data [--detector yolov8n] [--epochs 30] [--image-size 160]
        [--out /tmp/yolo-exp] [--results benchmarks/results/yolo_export.json]

One thread (the machine may be shared): wall and CPU seconds are both recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _per_image(predictor, paths) -> dict:
    predictor.predict(paths[:2])  # warm-up
    c0, w0 = _cpu(), time.perf_counter()
    predictor.predict(paths)
    return {
        "cpu_ms": round(1000 * (_cpu() - c0) / len(paths), 1),
        "wall_ms": round(1000 * (time.perf_counter() - w0) / len(paths), 1),
    }


def main(argv=None) -> int:
    import torch

    import headstart
    from headstart.export import export_model
    from headstart.predict import load_predictor
    from headstart.tasks.detection.predict import BoxPredictor

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--detector", default="yolov8n")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--out", type=Path, default=Path("/tmp/yolo-exp"))
    p.add_argument("--results", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run = args.out / args.detector
    c0, w0 = _cpu(), time.perf_counter()
    fit = headstart.fit(
        args.data,
        detector=args.detector,
        epochs=args.epochs,
        image_size=args.image_size,
        device="cpu",
        verbose=False,
        seed=0,
        out=run,
        overrides=["train.patience=null"],
    )
    fit_cpu, fit_wall = _cpu() - c0, time.perf_counter() - w0
    c0, w0 = _cpu(), time.perf_counter()
    result = export_model(run, "onnx")
    exp_cpu, exp_wall = _cpu() - c0, time.perf_counter() - w0
    r = result.parity
    test = sorted((args.data / "test").glob("*.*")) if (args.data / "test").is_dir() else []
    test = [t for t in test if t.suffix.lower() in {".jpg", ".png", ".jpeg"}][:40]
    row = {
        "detector": args.detector,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "run_test_map": fit.metrics["map"],
        "export_test_map": r.map_export,
        "map_abs_diff": None if r.map_export is None else abs(r.map_export - r.map_run),
        "boxes_matched": f"{r.n_matched}/{r.n_reference_boxes}",
        "max_box_diff_px": r.max_box_diff,
        "max_score_diff": r.max_score_diff,
        "parity_ok": r.ok,
        "onnx_mb": round(result.path.stat().st_size / 1e6, 1),
        "fit_cpu_s": round(fit_cpu, 1),
        "fit_wall_s": round(fit_wall, 1),
        "export_cpu_s": round(exp_cpu, 1),
        "export_wall_s": round(exp_wall, 1),
    }
    if test:
        row["n_timed_images"] = len(test)
        row["pytorch_per_image"] = _per_image(BoxPredictor.from_run(run), test)
        row["onnx_per_image"] = _per_image(load_predictor(result.path, threads=1), test)
    print(result.summary())
    print(json.dumps(row, indent=2))
    if args.results:
        doc = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, 1 thread",
            "command": "python " + " ".join(sys.argv),
            "rows": [row],
        }
        args.results.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
