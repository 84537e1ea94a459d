"""``headstart tune`` on a detection dataset: what a short default study finds against headstart's
default config (trial 0), in val mAP, in the test mAP of the final fit of the best config, and in
CPU time.

Data: glyphs composited onto real photos (``benchmarks/detection_data.py``), small enough for a
2-core CPU: ``--n-train`` / ``--n-val`` / ``--n-test`` images at ``--image-size`` px, test
backgrounds from photos that train and val never show. Model: mobilenetv2_100 with its real
ImageNet weights from the headstart store, at the data's size, ``--epochs`` fine-tuning epochs
(head-ft's head epochs and the rest stay headstart's choices). The study is headstart's default
(TPE, median pruning, the default config as trial 0) over the default detection space less what
the command fixes (input size and epochs, to bound the cost): LR, backbone LR ratio, augmentation
preset, strategy and detector (``--detector fcos`` fixes it). ``--pruner none`` trains every trial
in full, to see what the pruner cut. Each trial's CPU time (user + system of this process, all threads)
is measured between trials, so other jobs on a shared machine do not count.

    python benchmarks/tune_detection.py --trials 8 --n-train 80 --n-val 40 --n-test 60 --image-size 160 --epochs 6
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path


def run_study(data: Path, out: Path, *, trials: int, base: dict) -> tuple[list[dict], object, float, float]:
    """The study, with the CPU seconds of each finished trial (a Progress stand-in records them)."""
    import headstart
    from headstart.tuning import study as st

    rows: list[dict] = []
    last = [time.process_time()]
    orig = st.run_worker

    class Timer:
        def update(self, study):
            now = time.process_time()
            t = study.get_trials(deepcopy=False)[-1]
            rows.append({"trial": t.number, "state": t.state.name, "val_map": t.value if t.state.name == "COMPLETE" else None,
                         "test_map": t.user_attrs.get("test_map"), "epochs_run": len(t.intermediate_values),
                         "cpu_s": round(now - last[0], 2), "default": bool(t.user_attrs.get("default")),
                         "params": t.params})
            print(f"trial {t.number} {t.state.name} val_map {t.value} cpu {now - last[0]:.0f}s {t.params}", flush=True)
            last[0] = now

    def run_worker(run_dir, **kw):
        kw["progress"] = Timer()
        return orig(run_dir, **kw)

    st.run_worker = run_worker
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        result = headstart.tune(data, trials=trials, out=out, verbose=False, **base)
        cpu_total, wall = time.process_time() - c0, time.perf_counter() - t0
    finally:
        st.run_worker = orig
    return rows, result, cpu_total, wall


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--n-train", type=int, default=80)
    p.add_argument("--n-val", type=int, default=40)
    p.add_argument("--n-test", type=int, default=60)
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs of every trial (not searched)")
    p.add_argument("--model", default="mobilenetv2_100")
    p.add_argument("--sampler", default="tpe")
    p.add_argument("--pruner", default="median", help="median (headstart's default) or none: every trial trains in full")
    p.add_argument("--detector", default="auto", help="auto: searched; a name fixes it (not searched)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/headstart-tune-detection-bench")
    p.add_argument("--out", default="benchmarks/results/tune_detection.json")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from detection_data import make_dataset

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    make_dataset(data, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, image_size=args.image_size)
    base = {"model": args.model, "image_size": args.image_size, "epochs": args.epochs, "device": "cpu",
            "sampler": args.sampler, "pruner": args.pruner, "detector": args.detector}
    rows, result, cpu_total, wall = run_study(data, work / "study", trials=args.trials, base=base)

    default = next(r for r in rows if r["default"])
    trials_cpu = sum(r["cpu_s"] for r in rows)
    summary = {
        "default_val_map": default["val_map"], "default_test_map": default["test_map"],
        "best_trial": result.best_trial, "best_val_map": result.best_value, "best_params": result.best_params,
        "final_test_map": result.final.metrics["map"], "final_test_map50": result.final.metrics["map50"],
        "counts": result.counts, "trials_cpu_s": round(trials_cpu, 1),
        "final_cpu_s": round(cpu_total - trials_cpu, 1), "cpu_s": round(cpu_total, 1), "wall_s": round(wall, 1),
    }
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "threads": args.threads},
        "command": "python " + " ".join(sys.argv),
        "dataset": f"detection_data.py glyphs on photos, {args.n_train}/{args.n_val}/{args.n_test} images at "
                   f"{args.image_size} px; model {args.model}, {args.epochs} fine-tuning epochs",
        "space": json.loads((work / "study" / "tune.json").read_text())["space"],
        "trials": rows, "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
