"""Does ``headstart rank`` order detection backbones the way fine-tuning a detector does, and at what
cost?

Ground truth: every candidate (the real ImageNet backbones x ``--sizes`` input sizes) fine-tuned as
a detector with headstart's default detection recipe (FCOS on a CPU, head-ft, AdamW, ``light``
augmentation) but a short schedule (``--epochs`` in all, the first on the heads alone), test mAP on
photo backgrounds never seen in training (benchmarks/detection_data.py). Then ``headstart rank`` on
the training split, and the weighted Kendall tau (scipy.stats.weightedtau, hyperbolic weights on
the top) between each score (each estimator on the RoI-pooled features, the stride fit, the
combined score) and the test mAP; the top-1 regret; rank's time as a fraction of fine-tuning every
candidate.

    python benchmarks/detection_data.py --out /tmp/rankdet --n-train 160 --n-val 40 --n-test 80 --image-size 256
    python benchmarks/rank_detection.py --data /tmp/rankdet --phase finetune --truth /tmp/rankdet_truth.json
    python benchmarks/rank_detection.py --data /tmp/rankdet --phase rank
    python benchmarks/rank_detection.py --data /tmp/rankdet --phase score --truth /tmp/rankdet_truth.json \
        --results benchmarks/results/rank_detection.json

``--phase finetune`` appends each fine-tuning run to ``--truth`` as it finishes (a stopped run
resumes where it was; two processes with different ``--sizes`` and ``--truth`` files share the
machine's cores); ``--phase rank`` ranks every candidate into ``--work``/rank (cold feature cache,
then again from the cache, both timed); ``--phase score`` scores that table against one or more
comma-separated ``--truth`` files, with rank's cost prorated to the candidates fine-tuned. Needs the real weights
(``headstart weights fetch mobilenetv2_100 tf_efficientnet_lite0 tf_efficientnet_lite1 tf_efficientnet_lite2``).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mobilenetv2_100", "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
SIZES = [256, 160]


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (all threads)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def finetune(args) -> None:
    import torch

    import headstart

    torch.set_num_threads(1)
    truth_path = Path(args.truth)
    runs = json.loads(truth_path.read_text())["runs"] if truth_path.is_file() else []
    done = {(r["model"], r["image_size"]) for r in runs}
    for size in args.sizes:
        for model in args.models:
            if (model, size) in done:
                continue
            t0, c0 = time.perf_counter(), _cpu_s()
            result = headstart.fit(
                args.data,
                task="detect",
                model=model,
                image_size=size,
                epochs=args.epochs - 1,
                overrides=["detect.head_epochs=1"],
                seed=args.seed,
                verbose=False,
                out=str(Path(args.work) / f"{model}-{size}"),
            )
            runs.append(
                {
                    "model": model,
                    "image_size": size,
                    "test_map": float(result.metrics["map"]),
                    "test_map50": float(result.metrics["map50"]),
                    "epochs": args.epochs,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "cpu_s": round(_cpu_s() - c0, 1),
                }
            )
            print(json.dumps(runs[-1]), flush=True)
            truth_path.write_text(json.dumps({"data": str(args.data), "runs": runs}, indent=1))


ESTIMATORS = ["logme", "hscore", "nleep", "linear_probe", "knn", "stride_fit"]
MIXES = {
    "logme+linear_probe+knn (classification's mix)": ["logme", "linear_probe", "knn"],
    "logme+linear_probe+knn+stride_fit (the default)": ["logme", "linear_probe", "knn", "stride_fit"],
    "logme+stride_fit": ["logme", "stride_fit"],
    "linear_probe+stride_fit": ["linear_probe", "stride_fit"],
    "knn+stride_fit": ["knn", "stride_fit"],
}


def _scores(results: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] if r.get(key) is not None else np.nan for r in results], dtype=float)


def taus(results: list[dict], keys: list[str], target: str = "test_map") -> dict[str, float]:
    """Weighted Kendall tau (hyperbolic weights on the top) of each score against ``target``."""
    from scipy.stats import weightedtau

    truth = np.array([r[target] for r in results])
    out = {}
    for k in keys:
        vals = _scores(results, k)
        out[k] = float(weightedtau(vals, truth).statistic) if np.isfinite(vals).all() else float("nan")
    return out


def regrets(results: list[dict], keys: list[str]) -> dict[str, float]:
    """Best test mAP minus that of the candidate each score puts first (ties: their mean)."""
    truth = np.array([r["test_map"] for r in results])
    out = {}
    for k in keys:
        vals = _scores(results, k)
        top = vals == np.nanmax(vals) if np.isfinite(vals).any() else np.zeros(len(vals), bool)
        out[k] = float(truth.max() - truth[top].mean()) if top.any() else float("nan")
    return out


def rank_phase(args) -> None:
    """Rank every candidate (cold feature cache, then again from the cache), timed; the table and
    the timings go to ``<work>/rank`` for ``--phase score``."""
    import tempfile

    import torch

    from headstart.select.rank import rank

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        t0, c0 = time.perf_counter(), _cpu_s()
        table = rank(
            args.data,
            candidates=args.models,
            image_sizes=args.sizes,
            budget="60m",
            cache_dir=cache,
            out=Path(args.work) / "rank",
            verbose=False,
            seed=args.seed,
        )
        rank_s, rank_cpu = time.perf_counter() - t0, _cpu_s() - c0
        t1, c1 = time.perf_counter(), _cpu_s()
        rank(
            args.data,
            candidates=args.models,
            image_sizes=args.sizes,
            budget="60m",
            cache_dir=cache,
            out=Path(args.work) / "rank-again",
            verbose=False,
            seed=args.seed,
        )
        cached_s, cached_cpu = time.perf_counter() - t1, _cpu_s() - c1
    print(table)
    timing = {
        "rank_seconds": round(rank_s, 1),
        "rank_cpu_seconds": round(rank_cpu, 1),
        "rank_cached_seconds": round(cached_s, 1),
        "rank_cached_cpu_seconds": round(cached_cpu, 1),
        "command": "python " + " ".join(sys.argv),
    }
    (Path(args.work) / "rank" / "timing.json").write_text(json.dumps(timing))
    print(timing)


def score_phase(args) -> None:
    """Scores of ``--phase rank`` against the fine-tuned test mAP of ``--truth``."""
    from headstart.select.combine import combine_scores
    from headstart.select.report import RankTable

    runs = [r for path in args.truth.split(",") for r in json.loads(Path(path).read_text())["runs"]]
    truth = {(r["model"], r["image_size"]): r for r in runs}
    table = RankTable.from_json(Path(args.work) / "rank" / "rank.json")
    timing = json.loads((Path(args.work) / "rank" / "timing.json").read_text())
    sizes = sorted({k[1] for k in truth}, reverse=True)
    rank_s, rank_cpu, cached_s, cached_cpu = (
        timing[k] for k in ("rank_seconds", "rank_cpu_seconds", "rank_cached_seconds", "rank_cached_cpu_seconds")
    )
    print(table)
    results = []
    for row in table.rows:
        key = (row["model"], row["image_size"])
        if key in truth:
            results.append(
                {
                    **{k: truth[key][k] for k in ("model", "image_size", "test_map", "test_map50", "cpu_s", "wall_s")},
                    **{
                        k: row.get(k)
                        for k in ESTIMATORS + ["combined", "imagenet_top1", "images_per_s", "small_boxes", "rank"]
                    },
                }
            )
    for name, parts in MIXES.items():
        for r, v in zip(results, combine_scores(results, {p: 1.0 for p in parts})):
            r["mix:" + name] = v
    keys = ESTIMATORS + ["combined", "imagenet_top1"] + ["mix:" + n for n in MIXES]
    per_size = {}
    for size in sizes:  # backbones only: the input size held fixed
        sub = [r for r in results if r["image_size"] == size]
        if len(sub) >= 3:
            per_size[str(size)] = taus(sub, keys)
    fit_s, fit_cpu = sum(r["wall_s"] for r in results), sum(r["cpu_s"] for r in results)
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, 1 torch thread, cpu",
        "commands": [
            "python benchmarks/detection_data.py --out /tmp/rankdet --n-train 160 --n-val 40 --n-test 80"
            " --image-size 256",
            *(
                f"python benchmarks/rank_detection.py --data {args.data} --phase finetune --epochs {args.epochs}"
                f" --sizes {','.join(str(s) for s in sorted({r['image_size'] for r in json.loads(Path(t).read_text())['runs']}))}"
                f" --truth {t}"
                for t in args.truth.split(",")
            ),
            timing["command"],
            "python " + " ".join(sys.argv),
        ],
        "recipe": {
            "detector": "fcos (the CPU default)",
            "strategy": "head-ft",
            "epochs": args.epochs,
            "head_epochs": 1,
            "batch_size": 4,
            "augment": "light",
            "seed": args.seed,
        },
        "n_candidates": len(results),
        "n_images_ranked": table.meta["n_images"],
        "n_boxes_ranked": table.rows[0].get("n_boxes") if table.rows else None,
        "tau": taus(results, keys),
        "tau_per_size": per_size,
        "tau_map50": taus(results, keys, "test_map50"),
        # a fine-tuning that failed outright (mAP 0: the detector never learned boxes) says nothing
        # about transfer; the agreement without those runs
        "failed_finetunes": [f"{r['model']}@{r['image_size']}" for r in results if r["test_map"] == 0],
        "tau_excluding_failed": taus([r for r in results if r["test_map"] > 0], keys),
        "top1_regret_excluding_failed": regrets([r for r in results if r["test_map"] > 0], keys),
        "top1_regret": regrets(results, keys),
        "rank_seconds": round(rank_s, 1),
        "rank_cpu_seconds": round(rank_cpu, 1),
        "rank_cached_seconds": round(cached_s, 1),
        "rank_cached_cpu_seconds": round(cached_cpu, 1),
        "finetune_seconds": round(fit_s, 1),
        "finetune_cpu_seconds": round(fit_cpu, 1),
        "rank_candidates": len(table.rows),
        # rank may have scored more candidates than were fine-tuned: its cost is prorated to those
        "cost_fraction": rank_s * len(results) / len(table.rows) / fit_s,
        "cost_fraction_cpu": rank_cpu * len(results) / len(table.rows) / fit_cpu,
        "results": sorted(results, key=lambda r: -r["test_map"]),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=1))
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(summary, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--phase", choices=["finetune", "rank", "score"], required=True)
    p.add_argument(
        "--truth",
        default="-",
        help="fine-tuning results (JSON) written by --phase finetune; to score, several comma-separated",
    )
    p.add_argument("--models", default=",".join(MODELS), type=lambda s: s.split(","))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--epochs", type=int, default=6, help="fine-tuning epochs in all (the first on the heads alone)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="/tmp/rankdet_runs")
    p.add_argument("--results", default=None)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"finetune": finetune, "rank": rank_phase, "score": score_phase}[args.phase](args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
