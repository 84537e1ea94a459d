"""Does ``headstart rank`` order candidates the way fine-tuning does, and at what cost?

For each real dataset available offline, rank every candidate (3 real ImageNet backbones x 2 input
sizes), then fine-tune every candidate with one fixed recipe (lp-ft: a linear probe on cached
features, then a few epochs of full fine-tuning) and measure its test accuracy. Reports the
weighted Kendall tau (scipy.stats.weightedtau, hyperbolic weights on the top) between each score
and the fine-tuned test accuracy -- per estimator, for timm's ImageNet top-1 (the prior), and for
combinations of estimators -- and rank's wall time as a fraction of fine-tuning all candidates.

    python benchmarks/rank_quality.py [--epochs 3] [--out benchmarks/results/rank_quality.json]

Datasets: examples/faces (200 real 25x25 photos, face / non-face) and scikit-learn's digits
(8x8 scans, 50 per class = 500, written as 32 px PNGs in a temp folder). Needs the real weights
(`headstart weights fetch mobilenetv2_100 tf_efficientnet_lite0 tf_efficientnet_lite2`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mobilenetv2_100", "tf_efficientnet_lite0", "tf_efficientnet_lite2"]
SIZES = [96, 128]
ESTIMATORS = ["logme", "hscore", "nleep", "linear_probe", "knn"]


def make_digits(root: Path, per_class: int = 50, size: int = 32) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(d.target == c))[:per_class]
        for i in idx:
            img = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).resize((size, size), Image.BICUBIC)
            path = root / f"digit_{c}" / f"{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.convert("RGB").save(path)
    return root


def taus(results: list[dict], keys: list[str]) -> dict[str, float]:
    from scipy.stats import weightedtau

    acc = np.array([r["test_accuracy"] for r in results])
    out = {}
    for k in keys:
        vals = np.array([r[k] if r.get(k) is not None else np.nan for r in results], dtype=float)
        out[k] = float(weightedtau(vals, acc).statistic) if np.isfinite(vals).all() else float("nan")
    return out


def combos(rows: list[dict]) -> dict[str, list[float]]:
    from headstart.select.combine import combine_scores

    out = {}
    for k in range(2, len(ESTIMATORS) + 1):
        for names in itertools.combinations(ESTIMATORS, k):
            out["+".join(names)] = combine_scores(rows, {n: 1.0 for n in names})
    # the prior as one more z-scored score, mixed with the probes
    out["linear_probe+logme+knn+top1"] = combine_scores(rows, {"linear_probe": 1, "logme": 1, "knn": 1, "imagenet_top1": 1})
    return out


def run_dataset(name: str, path: Path, work: Path, epochs: int, probe_epochs: int) -> dict:
    import headstart
    from headstart.config import DataConfig
    from headstart.data.index import load_dataset
    from headstart.select.rank import rank

    index = load_dataset(DataConfig(path=path), seed=0)
    t0 = time.perf_counter()
    table = rank(index, candidates=MODELS, image_sizes=SIZES, budget="10m", out=work / f"{name}-rank",
                 cache_dir=work / "features", device="cpu", verbose=False, max_images=1000)
    rank_s = time.perf_counter() - t0
    rows = {(r["model"], r["image_size"]): r for r in table.rows}
    results = []
    for model in MODELS:
        for size in SIZES:
            t1 = time.perf_counter()
            res = headstart.fit(path, model=model, image_size=size, strategy="lp-ft", epochs=epochs,
                                probe_epochs=probe_epochs, batch_size=32, device="cpu", verbose=False,
                                seed=0, out=work / f"{name}-{model}-{size}")
            fit_s = time.perf_counter() - t1
            r = rows[(model, size)]
            results.append({"model": model, "image_size": size, "test_accuracy": res.metrics["accuracy"],
                            "test_balanced_accuracy": res.metrics["balanced_accuracy"], "fit_seconds": fit_s,
                            **{k: r.get(k) for k in ESTIMATORS + ["combined", "imagenet_top1", "images_per_s", "rank"]}})
            print(f"{name} {model}@{size}: test acc {res.metrics['accuracy']:.4f} in {fit_s:.0f}s", flush=True)
    combo_scores = combos(results)
    for key, values in combo_scores.items():
        for r, v in zip(results, values):
            r["combo:" + key] = v
    fit_total = sum(r["fit_seconds"] for r in results)
    return {
        "dataset": name, "n_train": len(index.splits["train"]), "n_test": len(index.splits.get("test", [])),
        "rank_seconds": rank_s, "rank_images_per_candidate": table.meta["n_images"], "finetune_seconds": fit_total,
        "cost_fraction": rank_s / fit_total, "results": results,
        "tau": taus(results, ESTIMATORS + ["combined", "imagenet_top1"] + ["combo:" + k for k in combo_scores]),
    }


def main() -> None:
    import torch

    torch.set_num_threads(2)
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--probe-epochs", type=int, default=20)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rank_quality.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        datasets = {"faces": ROOT / "examples" / "faces", "digits": make_digits(work / "digits")}
        per = [run_dataset(n, p, work, args.epochs, args.probe_epochs) for n, p in datasets.items()]
    keys = per[0]["tau"].keys()
    mean_tau = {k: float(np.mean([d["tau"][k] for d in per])) for k in keys}
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU",
        "command": "python benchmarks/rank_quality.py --epochs %d --probe-epochs %d" % (args.epochs, args.probe_epochs),
        "recipe": {"strategy": "lp-ft", "epochs": args.epochs, "probe_epochs": args.probe_epochs, "batch_size": 32},
        "mean_tau": dict(sorted(mean_tau.items(), key=lambda kv: -kv[1] if np.isfinite(kv[1]) else 1e9)),
        "mean_cost_fraction": float(np.mean([d["cost_fraction"] for d in per])),
        "total_rank_seconds": sum(d["rank_seconds"] for d in per),
        "total_finetune_seconds": sum(d["finetune_seconds"] for d in per),
        "datasets": per,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "datasets"}, indent=2))
    for d in per:
        print(d["dataset"], "tau:", {k: round(v, 3) for k, v in d["tau"].items() if not k.startswith("combo:")},
              "cost fraction %.3f" % d["cost_fraction"])


if __name__ == "__main__":
    main()
