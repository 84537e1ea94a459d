"""Does ``headstart rank`` order candidates the way fine-tuning does, and at what cost?

For each real dataset available offline, rank every candidate (3 real ImageNet backbones x the
``--sizes`` input sizes), then fine-tune every candidate with one fixed recipe (lp-ft: a linear probe on cached
features, then a few epochs of full fine-tuning) and measure its test accuracy. Reports the
weighted Kendall tau (scipy.stats.weightedtau, hyperbolic weights on the top) between each score
and the fine-tuned test accuracy -- per estimator, for timm's ImageNet top-1 (the prior), and for
combinations of estimators -- the top-1 regret (best fine-tuned accuracy minus that of the
candidate ranked first), and rank's wall time as a fraction of fine-tuning all candidates. With
``--seeds`` > 1 it also reports how well the fine-tuning seeds agree with each other (the ceiling
for any estimator), and with several datasets a leave-one-dataset-out choice of the score.

    python benchmarks/rank_quality.py [--datasets digits,patches] [--sizes 96,128] [--max-images 200]
        [--epochs 5] [--seeds 1] [--train-per-class N --test-per-class M] [--ground-truth RESULTS.json]

``--ground-truth`` reuses the fine-tuning results (accuracies and times) of an earlier run made
with the same dataset options and only ranks again: an estimator change is re-scored in a minute.
With a larger ``--seeds`` than that run had, it fine-tunes just the missing seeds.

Datasets (all real images available offline):
* ``digits``: scikit-learn's handwritten digits (8x8 scans) written as 32 px PNGs: ``--per-class``
  a class with 30 % held out for test, or with ``--train-per-class N`` N a class for training and
  all the other of the 1797 for test.
* ``patches``: which of 12 scikit-image sample photos (textures, a cat, coffee, coins, the moon,
  a rocket, a stained tissue section, ...) a small patch comes from. Training patches come from the left 60 % of
  each photo and test patches from the right 40 %, so no test pixel was seen in training: the
  model must recognise the texture or scene, not the place. 48 px patches, grayscale and colour;
  ``--train-per-class`` (default 60) and ``--test-per-class`` (default 30) a photo.
* ``faces``: examples/faces (200 real 25x25 photos, face / non-face). Every candidate fine-tunes
  to 100 % there, so its tau is undefined; kept as an option for the record.

Rank runs with its defaults (all five estimators; combined score = LogME + ridge probe + k-NN) on at most
``--max-images`` training images; its wall and CPU time are compared with fine-tuning every
candidate once. With ``--seeds N`` each candidate is fine-tuned N times and the ground truth is
the mean test accuracy (the cost fraction still counts one fine-tuning per candidate). Needs the
real weights (`headstart weights fetch mobilenetv2_100 tf_efficientnet_lite0 tf_efficientnet_lite2`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mobilenetv2_100", "tf_efficientnet_lite0", "tf_efficientnet_lite2"]
SIZES = [96, 128]
ESTIMATORS = ["logme", "hscore", "nleep", "linear_probe", "knn"]


def make_digits(root: Path, per_class: int = 100, size: int = 32, train_per_class: int | None = None) -> Path:
    """``per_class`` images a class in class folders (fit holds out 30 % for test); or, with
    ``train_per_class``, split folders: that many a class in ``train/`` and every other image of
    the 1797 in ``test/`` (a large test set keeps the ground truth's sampling noise small)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(d.target == c))
        if train_per_class is None:
            placed = [(i, "") for i in idx[:per_class]]
        else:
            placed = [(i, "train/" if k < train_per_class else "test/") for k, i in enumerate(idx)]
        for i, split in placed:
            img = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).resize((size, size), Image.BICUBIC)
            path = root / f"{split}digit_{c}" / f"{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.convert("RGB").save(path)
    return root


PATCH_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                "hubble_deep_field", "immunohistochemistry", "moon", "rocket")


def make_patches(root: Path, train_per_class: int = 60, test_per_class: int = 30, size: int = 48) -> Path:
    """Split folders ``train/<photo>/`` and ``test/<photo>/`` of square patches (side 10-20 % of
    the photo's shorter side, resized to ``size``) from disjoint regions of each photo."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in PATCH_PHOTOS:
        photo = getattr(skimage.data, name)()
        if photo.ndim == 2:
            photo = np.stack([photo] * 3, -1)
        photo = photo[..., :3]
        h, w = photo.shape[:2]
        cut = int(w * 0.6)
        for split, (x0, x1), count in (("train", (0, cut), train_per_class), ("test", (cut, w), test_per_class)):
            for i in range(count):
                side = int(rng.integers(min(h, w) // 10, min(h, w) // 5 + 1))
                y = int(rng.integers(0, h - side + 1))
                x = int(rng.integers(x0, x1 - side + 1))
                patch = Image.fromarray(np.ascontiguousarray(photo[y : y + side, x : x + side]))
                path = root / split / name / f"{name}_{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                patch.resize((size, size), Image.BICUBIC).save(path)
    return root


def seed_agreement(results: list[dict]) -> dict[str, float]:
    """How well the ground truth agrees with itself: weighted tau between every two fine-tuning
    seeds, and between each seed and the mean of the others (the ceiling for any estimator)."""
    from scipy.stats import weightedtau

    per_seed = np.array([r["test_accuracy_per_seed"] for r in results])  # (candidates, seeds)
    k = per_seed.shape[1]
    if k < 2:
        return {}
    pairs = [float(weightedtau(per_seed[:, a], per_seed[:, b]).statistic) for a, b in itertools.combinations(range(k), 2)]
    rest = [float(weightedtau(per_seed[:, a], np.delete(per_seed, a, 1).mean(1)).statistic) for a in range(k)]
    return {"pairwise_mean": float(np.mean(pairs)), "pairwise": pairs, "seed_vs_rest_mean": float(np.mean(rest)),
            "accuracy_spread": float(per_seed.mean(1).max() - per_seed.mean(1).min()),
            "seed_std_mean": float(per_seed.std(1, ddof=1).mean())}


def leave_one_dataset_out(per: list[dict]) -> dict:
    """Choose the score (single estimator or equal-weight mix) with the best mean tau on the other
    datasets, then report its tau on the held-out one: a validated choice, not the best in hindsight."""
    if len(per) < 2:
        return {}
    keys = [k for k in per[0]["tau"] if all(np.isfinite(d["tau"].get(k, np.nan)) for d in per)]
    out = {}
    for held in per:
        others = [d for d in per if d is not held]
        best = max(keys, key=lambda k: np.mean([d["tau"][k] for d in others]))
        out[held["dataset"]] = {"chosen": best, "tau_held_out": held["tau"][best]}
    out["mean_tau_held_out"] = float(np.mean([v["tau_held_out"] for v in out.values()]))
    return out


def _scores(results: list[dict], key: str) -> np.ndarray:
    """One score of every candidate, NaN where it was not computed."""
    return np.array([r[key] if r.get(key) is not None else np.nan for r in results], dtype=float)


def regrets(results: list[dict], keys: list[str]) -> dict[str, float]:
    """What picking each score's top candidate costs: the best fine-tuned test accuracy minus the
    accuracy of the candidate the score ranks first (0 = it picked the best; what ``fit --model
    auto`` loses by trusting the ranking). Candidates tied at the top (the ImageNet prior gives every
    size of a model the same score) count with their mean accuracy: a random pick among them."""
    acc = np.array([r["test_accuracy"] for r in results])
    out = {}
    for k in keys:
        vals = _scores(results, k)
        top = vals == np.nanmax(vals) if np.isfinite(vals).any() else np.zeros(len(vals), bool)
        out[k] = float(acc.max() - acc[top].mean()) if top.any() else float("nan")
    return out


def relative_accuracy_error(results: list[dict]) -> dict[str, float]:
    """How far rank's "rel acc" column (ridge-probe accuracy / the best one's) is from fine-tuned
    accuracy / the best fine-tuned accuracy: mean absolute error and mean signed error (> 0: rank
    is optimistic)."""
    from headstart.select.combine import relative_accuracy

    predicted = np.array(relative_accuracy([r["linear_probe"] for r in results]), dtype=float)
    acc = np.array([r["test_accuracy"] for r in results])
    diff = predicted - acc / acc.max()
    return {"mae": float(np.nanmean(np.abs(diff))), "bias": float(np.nanmean(diff))}


def taus(results: list[dict], keys: list[str]) -> dict[str, float]:
    from scipy.stats import weightedtau

    acc = np.array([r["test_accuracy"] for r in results])
    out = {}
    for k in keys:
        vals = _scores(results, k)
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


def _stored_truth(path: str, name: str, index, args) -> dict:
    """The fine-tuning results of ``name`` in an earlier results file (``--ground-truth``), after
    checking that the dataset is the same size; keyed by (model, size)."""
    saved = json.loads(Path(path).read_text())
    recipe = {k: saved["recipe"].get(k) for k in ("epochs", "probe_epochs")}
    if recipe != {"epochs": args.epochs, "probe_epochs": args.probe_epochs}:
        raise SystemExit(f"{path} was fine-tuned with {recipe}; pass the same --epochs and --probe-epochs")
    stored = next((d for d in saved["datasets"] if d["dataset"] == name), None)
    if stored is None:
        raise SystemExit(f"{path} has no dataset {name!r}")
    here = (len(index.splits["train"]), len(index.splits.get("test", [])))
    if (stored["n_train"], stored["n_test"]) != here:
        raise SystemExit(f"{path}: {name} had train/test {stored['n_train']}/{stored['n_test']}, this run has"
                         f" {here[0]}/{here[1]}; pass the same --per-class/--train-per-class/--test-per-class")
    return {(r["model"], r["image_size"]): r for r in stored["results"]}


def run_dataset(name: str, path: Path, work: Path, args) -> dict:
    import headstart
    from headstart.config import DataConfig
    from headstart.data.index import load_dataset
    from headstart.select.rank import rank

    split = {} if (path / "train").is_dir() else {"test_fraction": 0.3}
    index = load_dataset(DataConfig(path=path, **split), seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    table = rank(index, candidates=MODELS, image_sizes=args.sizes, budget=args.budget, out=work / f"{name}-rank",
                 cache_dir=work / "features", device=args.device, verbose=False, max_images=args.max_images)
    rank_s, rank_cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = {(r["model"], r["image_size"]): r for r in table.rows}
    truth = _stored_truth(args.ground_truth, name, index, args) if args.ground_truth else None
    results = []
    for model in MODELS:
        for size in args.sizes:
            if truth is not None:
                if (model, size) not in truth:
                    raise SystemExit(f"{args.ground_truth} has no fine-tuning result for {name} {model}@{size}")
                stored = truth[(model, size)]
                accs = list(stored["test_accuracy_per_seed"])
                fit_s, fit_cpu = [stored["fit_seconds"]] * len(accs), [stored["fit_cpu_seconds"]] * len(accs)
            else:
                accs, fit_s, fit_cpu = [], [], []
            for seed in range(len(accs), args.seeds):  # with --ground-truth: only the seeds it lacks
                t1, c1 = time.perf_counter(), time.process_time()
                res = headstart.fit(path, model=model, image_size=size, strategy="lp-ft", epochs=args.epochs,
                                    probe_epochs=args.probe_epochs, batch_size=32, device=args.device,
                                    verbose=False, seed=seed, out=work / f"{name}-{model}-{size}-{seed}", **split)
                fit_s.append(time.perf_counter() - t1)
                fit_cpu.append(time.process_time() - c1)
                accs.append(res.metrics["accuracy"])
            r = rows[(model, size)]
            results.append({"model": model, "image_size": size, "test_accuracy": float(np.mean(accs)),
                            "test_accuracy_per_seed": accs, "fit_seconds": float(np.mean(fit_s)),
                            "fit_cpu_seconds": float(np.mean(fit_cpu)),
                            **{k: r.get(k) for k in ESTIMATORS + ["combined", "imagenet_top1", "images_per_s", "rank"]}})
            print(f"{name} {model}@{size}: test acc {np.mean(accs):.4f} {accs} in {np.mean(fit_s):.0f}s", flush=True)
    combo_scores = combos(results)
    for key, values in combo_scores.items():
        for r, v in zip(results, values):
            r["combo:" + key] = v
    score_keys = ESTIMATORS + ["combined", "imagenet_top1"] + ["combo:" + k for k in combo_scores]
    fit_total = sum(r["fit_seconds"] for r in results)
    fit_cpu_total = sum(r["fit_cpu_seconds"] for r in results)
    out = {
        "dataset": name, "n_train": len(index.splits["train"]), "n_test": len(index.splits.get("test", [])),
        "n_classes": index.num_classes, "rank_seconds": rank_s, "rank_cpu_seconds": rank_cpu,
        "rank_images_per_candidate": table.meta["n_images"], "finetune_seconds": fit_total,
        "finetune_cpu_seconds": fit_cpu_total, "cost_fraction": rank_s / fit_total,
        "cost_fraction_cpu": rank_cpu / fit_cpu_total, "results": results,
        "tau": taus(results, score_keys),
        "top1_regret": regrets(results, score_keys),
        "seed_agreement": seed_agreement(results),
        "relative_accuracy_error": relative_accuracy_error(results),
    }
    print(f"{name}: rank {rank_s:.0f}s ({rank_cpu:.0f} CPU s) vs fine-tune {fit_total:.0f}s ({fit_cpu_total:.0f} CPU s);"
          f" tau {out['tau']['combined']:.3f}", flush=True)
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="digits,patches")
    ap.add_argument("--per-class", type=int, default=100, help="digits per class (30 %% of them held out for test)")
    ap.add_argument("--train-per-class", type=int, default=None,
                    help="training images a class; digits then tests on all the rest, patches on --test-per-class")
    ap.add_argument("--test-per-class", type=int, default=30, help="patches' test images a class")
    ap.add_argument("--epochs", type=int, default=5, help="full fine-tuning epochs after the probe (lp-ft)")
    ap.add_argument("--probe-epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="input sizes of every model (default 96,128)")
    ap.add_argument("--max-images", type=int, default=200, help="rank's sample cap per candidate")
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ground-truth", default=None,
                    help="reuse the fine-tuning results (accuracies and times) of an earlier results JSON made with"
                         " the same dataset options, and only rank (and fine-tune the seeds it lacks up to --seeds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rank_quality.json"))
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        makers = {"faces": lambda: ROOT / "examples" / "faces",
                  "digits": lambda: make_digits(work / "digits", per_class=args.per_class,
                                                train_per_class=args.train_per_class),
                  "patches": lambda: make_patches(work / "patches", train_per_class=args.train_per_class or 60,
                                                  test_per_class=args.test_per_class)}
        per = [run_dataset(n, makers[n](), work, args) for n in args.datasets.split(",")]
    keys = per[0]["tau"].keys()
    defined = [d for d in per if np.isfinite(d["tau"]["combined"])]
    mean_tau = {k: float(np.mean([d["tau"][k] for d in defined])) for k in keys} if defined else {}
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, {args.device}",
        "command": "python " + " ".join(sys.argv),
        "recipe": {"strategy": "lp-ft", "epochs": args.epochs, "probe_epochs": args.probe_epochs, "batch_size": 32,
                   "seeds": args.seeds, "train_per_class": args.train_per_class},
        "ground_truth_from": args.ground_truth,
        "mean_tau": dict(sorted(mean_tau.items(), key=lambda kv: -kv[1] if np.isfinite(kv[1]) else 1e9)),
        "mean_top1_regret": {k: float(np.mean([d["top1_regret"][k] for d in per])) for k in per[0]["top1_regret"]},
        "mean_cost_fraction": float(np.mean([d["cost_fraction"] for d in per])),
        "mean_cost_fraction_cpu": float(np.mean([d["cost_fraction_cpu"] for d in per])),
        "total_rank_seconds": sum(d["rank_seconds"] for d in per),
        "total_finetune_seconds": sum(d["finetune_seconds"] for d in per),
        "leave_one_dataset_out": leave_one_dataset_out(defined),
        "datasets": per,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("datasets", "mean_tau")}, indent=2))
    for d in per:
        print(d["dataset"], "tau:", {k: round(v, 3) for k, v in d["tau"].items() if not k.startswith("combo:")},
              "top-1 regret:", {k: round(v, 3) for k, v in d["top1_regret"].items() if not k.startswith("combo:")},
              "cost fraction %.3f (CPU %.3f)" % (d["cost_fraction"], d["cost_fraction_cpu"]),
              "seeds:", {k: v for k, v in d["seed_agreement"].items() if k != "pairwise"})
    print("leave one dataset out:", summary["leave_one_dataset_out"])


if __name__ == "__main__":
    main()
