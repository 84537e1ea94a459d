"""Accuracy reached versus CPU time: plain random search (no pruning, no default trial), and
headstart's default study (TPE + median pruning, headstart's default config as trial 0), on a real
dataset available offline with real ImageNet weights. The target: headstart's default reaches
random search's best validation accuracy in at most a third of random search's CPU time.

Dataset: scikit-learn's handwritten digits (1797 8x8 grayscale scans, 10 classes), subsampled to
``--per-class`` images a class and written as PNGs upscaled to 32 px. Model: mobilenetv2_100 with
its ImageNet weights from the headstart store, input 64 px. Every study searches headstart's
default space for this dataset size; each trial's CPU time (user + system of this process, all
threads) is measured between trials, so other jobs on a shared machine do not count.

    python benchmarks/tune_efficiency.py --trials 12 --per-class 60 --epochs 6
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path


def write_digits(root: Path, per_class: int, size: int = 32, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)
        for i in rng.choice(idx, size=per_class, replace=False):
            img = (digits.images[i] / 16.0 * 255).astype("uint8")
            path = root / str(label) / f"{label}_{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).resize((size, size), Image.BICUBIC).convert("RGB").save(path)
    return root


def run_study(name: str, data: Path, out: Path, *, sampler: str, pruner: str, trials: int, base: dict,
              default_trial: bool = True) -> dict:
    import headstart
    from headstart.tuning import study as st

    rows = []
    last = [time.process_time()]
    orig = st.run_worker

    class Timer:  # a Progress stand-in: records CPU time per finished trial
        def update(self, study):
            now = time.process_time()
            t = study.get_trials(deepcopy=False)[-1]
            rows.append({"trial": t.number, "state": t.state.name, "value": t.value if t.state.name == "COMPLETE" else None,
                         "test_accuracy": t.user_attrs.get("test_accuracy"), "cpu_s": round(now - last[0], 2),
                         "default": bool(t.user_attrs.get("default")), "params": t.params})
            last[0] = now

    def run_worker(run_dir, **kw):
        kw["progress"] = Timer()
        return orig(run_dir, **kw)

    st.run_worker = run_worker
    try:
        t0 = time.perf_counter()
        result = headstart.tune(data, trials=trials, sampler=sampler, pruner=pruner, out=out, final=False,
                                verbose=False, default_trial=default_trial, **base)
        wall = time.perf_counter() - t0
    finally:
        st.run_worker = orig
    cum, best, curve = 0.0, 0.0, []
    for r in rows:
        cum += r["cpu_s"]
        if r["value"] is not None:
            best = max(best, r["value"])
        curve.append({"cpu_s": round(cum, 2), "best_val_accuracy": best})
    print(f"{name}: best val accuracy {result.best_value:.4f} after {cum:.0f} s CPU ({wall:.0f} s wall), "
          f"{result.counts}", flush=True)
    return {"name": name, "sampler": sampler, "pruner": pruner, "trials": rows, "curve": curve,
            "best_val_accuracy": result.best_value, "cpu_s": round(cum, 2), "wall_s": round(wall, 1),
            "counts": result.counts}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--model", default="mobilenetv2_100")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=6, help="headstart's default epochs; the space searches epochs/3..epochs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/headstart-tune-bench")
    p.add_argument("--out", default="benchmarks/results/tune_efficiency.json")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data = write_digits(work / "digits", args.per_class)
    base = {"model": args.model, "image_size": args.image_size, "epochs": args.epochs, "device": "cpu"}
    random_s = run_study("random search, no pruning", data, work / "random", sampler="random", pruner="none",
                         trials=args.trials, base=base, default_trial=False)
    ours = run_study("headstart default: TPE + median pruning, default config first", data, work / "tpe",
                     sampler="tpe", pruner="median", trials=args.trials, base=base)
    studies = [random_s, ours]
    rand_best, rand_cpu = random_s["best_val_accuracy"], random_s["cpu_s"]
    default = ours["trials"][0]
    reach = {s["name"]: next((c["cpu_s"] for c in s["curve"] if c["best_val_accuracy"] >= rand_best), None)
             for s in studies}
    ours_reach = reach[ours["name"]]
    summary = {
        "random_best_val_accuracy": rand_best, "random_cpu_s": rand_cpu,
        "headstart_best_val_accuracy": ours["best_val_accuracy"], "headstart_cpu_s": ours["cpu_s"],
        "default_config_val_accuracy": default["value"], "default_config_cpu_s": default["cpu_s"],
        "cpu_s_to_reach_random_best": reach,
        "headstart_fraction_of_random_cpu": None if ours_reach is None else round(ours_reach / rand_cpu, 3),
        "target_met": ours_reach is not None and ours_reach <= rand_cpu / 3,
    }
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "threads": args.threads},
        "command": "python " + " ".join(sys.argv),
        "dataset": f"sklearn digits, {args.per_class} images a class, 32 px PNG; model {args.model} at {args.image_size} px",
        "studies": studies, "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
