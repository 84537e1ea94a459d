"""COCO bbox evaluation time: faster-coco-eval (what headstart uses) against pycocotools (the
reference), on one synthetic set: random ground truth with noisy detections
(tests/tasks/detection/synthetic.py), default ~2000 images, 10 classes.

Each library is timed end to end on the same in-memory COCO dicts: building the ground-truth and
results objects, evaluate, accumulate, summarize (best of ``--repeats``). The 12 stats are checked
equal, and headstart's ``coco_metrics`` (faster-coco-eval plus its own IoU-0.5 matching for the
F1-best threshold, and the input checks) is timed too.

    python benchmarks/coco_eval_speed.py [--images 2000] [--classes 10] [--repeats 3]

Prints a JSON summary, also written to benchmarks/results/coco_eval_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def _pycocotools(gt_dict, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def _faster(gt_dict, results):
    from faster_coco_eval import COCO, COCOeval_faster

    def quiet(*args, **kwargs):
        return None

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_dict, print_function=quiet)
        evaluator = COCOeval_faster(gt, gt.loadRes(results), "bbox", print_function=quiet)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def _best_of(repeats, fn, *make_args):
    """Best wall time of ``repeats`` runs of fn(*args), fresh deep copies each time (both COCO
    implementations write into the dicts they are given); the copy is not timed."""
    times, out = [], None
    for _ in range(repeats):
        args = [copy.deepcopy(a) for a in make_args]
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    from headstart.tasks.detection.metrics import STATS_KEYS, coco_ground_truth, coco_metrics, coco_results
    from headstart.tasks.detection.records import as_ground_truth
    from tests.tasks.detection.synthetic import detection_set

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--max-boxes", type=int, default=12, help="ground-truth boxes per image: 0..this")
    ap.add_argument("--max-false", type=int, default=30, help="random false positives per image: 0..this")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "coco_eval_speed.json"))
    args = ap.parse_args()

    classes = [f"class{i}" for i in range(args.classes)]
    ground_truth, detections = detection_set(args.seed, args.images, args.classes, max_boxes=args.max_boxes,
                                             max_false=args.max_false)
    gt_dict = coco_ground_truth(as_ground_truth(ground_truth, len(classes)), classes)
    results = coco_results(detections, classes)

    t_ref, ref = _best_of(args.repeats, _pycocotools, gt_dict, results)
    t_fast, fast = _best_of(args.repeats, _faster, gt_dict, results)
    t_metrics, metrics = _best_of(args.repeats, lambda: coco_metrics(ground_truth, detections, classes))
    ours = np.array([-1.0 if metrics[k] is None else metrics[k] for k in STATS_KEYS])
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "versions": {name: _version(name) for name in ("faster-coco-eval", "pycocotools", "numpy")},
        "images": args.images, "classes": args.classes, "boxes": len(gt_dict["annotations"]),
        "detections": len(results), "repeats": args.repeats,
        "pycocotools_s": round(t_ref, 3),
        "faster_coco_eval_s": round(t_fast, 3),
        "speedup": round(t_ref / t_fast, 1),
        "headstart_coco_metrics_s": round(t_metrics, 3),
        "max_abs_stat_difference": float(max(np.abs(fast - ref).max(), np.abs(ours - ref[:12]).max())),
        "map": metrics["map"], "map50": metrics["map50"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
