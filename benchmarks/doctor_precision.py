"""Precision and recall of ``headstart doctor``'s label and duplicate checks on planted problems, on a
design group of datasets (used to choose the thresholds) and a held-out group (only reported on).

Datasets: benchmarks/defaults.py's offline sets (design: textures, photos; held-out: digits, glyphs,
faces), all splits together as the doctor sees them. Features: mobilenetv2_100 (ImageNet weights
from the store) at 96 px, one torch thread. Per dataset:

* label noise: 0 / 5 / 15 % of the labels flipped to another class at random, 3 seeds: precision
  and recall of the ``label-issues`` list against the flipped images, its severity, and the
  confusable-class pairs reported; the plain first-pass cleanlab list (what the doctor listed
  before) for comparison;
* planted confusion: one class split at random into two (``X`` and ``X_twin``: the same kind of
  pictures under two names), 3 seeds: is the pair reported as confusable, and how severe is the
  label-issues finding (it should not be high);
* leakage: 10 train images copied into val as 1.25x bicubic-resized JPEGs (quality 75), 3 seeds:
  recall of the copies and precision of the ``split-leakage`` pairs; the pairs found on the clean
  dataset; and the old rule (hash within 2 bits, or feature cosine >= 0.97) on the clean dataset;
* a full ``headstart.doctor`` run on each clean dataset: its high findings.

Run: ``OMP_NUM_THREADS=1 python benchmarks/doctor_precision.py [--root /tmp/hs_doctor_data]``
(builds the datasets there when missing). Raw results: ``benchmarks/results/doctor_precision.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

GROUPS = {"design": ("textures", "photos"), "held_out": ("digits", "glyphs", "faces")}
SIZE = 96
SEEDS = (0, 1, 2)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _flip(labels: np.ndarray, k: int, rate: float, seed: int):
    rng = np.random.default_rng(100 + seed)
    flipped = rng.choice(len(labels), int(round(rate * len(labels))), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, k, len(flipped))) % k
    return noisy, set(flipped.tolist())


def _label_run(feats, labels, classes, paths, seed):
    from headstart.diagnose import features as feat
    from headstart.diagnose.label_checks import check_label_issues, find_label_issues

    probe = feat.cross_val_probe(feats, labels, len(classes), seed=seed)
    first = find_label_issues(labels, probe.pred_probs)
    pruned = feat.reprobe_without(probe, feats, first, seed=seed)
    found = check_label_issues(labels, pruned.pred_probs, paths, classes, probe_error=pruned.kept_error)
    index = {str(p): i for i, p in enumerate(paths)}
    issues = next((f for f in found if f.check == "label-issues"), None)
    confusable = next((f for f in found if f.check == "confusable-classes"), None)
    return {
        "first_pass": set(first.tolist()),
        "listed": {index[r["path"]] for r in issues.data["images"]} if issues else set(),
        "severity": issues.severity if issues else None,
        "pairs": [p["classes"] for p in confusable.data["pairs"]] if confusable else [],
        "probe_error": pruned.kept_error,
    }


def _pr(found: set, truth: set) -> tuple[float | None, float | None]:
    tp = len(found & truth)
    return (tp / len(found) if found else None), (tp / len(truth) if truth else None)


def label_noise(feats, labels, classes, paths) -> list[dict]:
    rows = []
    for rate in (0.0, 0.05, 0.15):
        for seed in SEEDS:
            noisy, flipped = _flip(labels, len(classes), rate, seed)
            r = _label_run(feats, noisy, classes, paths, seed)
            p, rc = _pr(r["listed"], flipped)
            p1, r1 = _pr(r["first_pass"], flipped)
            rows.append(
                {
                    "rate": rate,
                    "seed": seed,
                    "severity": r["severity"],
                    "listed": len(r["listed"]),
                    "listed_fraction": len(r["listed"]) / len(labels),
                    "precision": p,
                    "recall": rc,
                    "first_pass_flags": len(r["first_pass"]),
                    "first_pass_precision": p1,
                    "first_pass_recall": r1,
                    "confusable_pairs": r["pairs"],
                    "probe_error": r["probe_error"],
                }
            )
    return rows


def planted_confusion(feats, labels, classes, paths) -> list[dict]:
    rows = []
    for seed in SEEDS:
        rng = np.random.default_rng(200 + seed)
        target = int(seed % len(classes))
        names = list(classes) + [f"{classes[target]}_twin"]
        twin = labels.copy()
        members = np.flatnonzero(labels == target)
        twin[rng.choice(members, len(members) // 2, replace=False)] = len(classes)
        r = _label_run(feats, twin, names, paths, seed)
        rows.append(
            {
                "seed": seed,
                "pair": [classes[target], names[-1]],
                "found": [classes[target], names[-1]] in r["pairs"],
                "other_pairs": [p for p in r["pairs"] if p != [classes[target], names[-1]]],
                "label_issues_severity": r["severity"],
                "listed": len(r["listed"]),
            }
        )
    return rows


def _bits_apart(a, b) -> int:
    return bin(int(a) ^ int(b)).count("1")


def leakage(paths, labels, splits, classes, feats, tmp: Path) -> dict:
    from PIL import Image

    from headstart.data.decode import open_rgb
    from headstart.diagnose import data_checks as dc
    from headstart.diagnose.features import extract

    scan = dc.scan_images(paths)
    clean = [f for f in dc.check_duplicates(scan, splits, labels, classes) if f.check == "split-leakage"]
    # the rule before this benchmark: hash within 2 bits, or centred feature cosine >= 0.97
    old = set(dc._hamming_pairs(scan.phash, 2))
    z = feats - feats.mean(0, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    sim = z @ z.T
    old.update((int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(sim >= 0.97, 1))))
    old_cross = sum(1 for i, j in old if splits[i] != splits[j])
    planted = []
    train = [i for i, s in enumerate(splits) if s == "train"]
    for seed in SEEDS:
        src = np.random.default_rng(300 + seed).choice(train, 10, replace=False)
        copies = []
        for k, i in enumerate(src):
            image = open_rgb(paths[i])
            w, h = image.size
            c = tmp / f"copy{seed}_{k}.jpg"
            image.resize((round(w * 1.25), round(h * 1.25)), Image.Resampling.BICUBIC).save(c, quality=75)
            copies.append(c)
        more = dc.scan_images(copies)
        # how each candidate confirmation sees a copy and its original: feature cosine (centred with the
        # dataset mean, at the benchmark's 96 px), 8x8 thumbnail correlation, hash distance
        zc = extract(copies, "mobilenetv2_100", SIZE) - feats.mean(0, keepdims=True)
        zc /= np.maximum(np.linalg.norm(zc, axis=1, keepdims=True), 1e-12)
        copy_stats = {
            "feature_cosine": [round(float(zc[k] @ z[i]), 3) for k, i in enumerate(src)],
            "thumb_corr": [round(float(more.thumbs[k] @ scan.thumbs[i]), 3) for k, i in enumerate(src)],
            "hash_bits": [_bits_apart(more.phash[k], scan.phash[i]) for k, i in enumerate(src)],
        }
        all_scan = dc.ImageScan(
            list(scan.paths) + copies,
            np.concatenate([scan.sizes, more.sizes]),
            np.concatenate([scan.gray, more.gray]),
            np.concatenate([scan.means, more.means]),
            np.concatenate([scan.stds, more.stds]),
            np.concatenate([scan.phash, more.phash]),
            scan.digest + more.digest,
            np.concatenate([scan.thumbs, more.thumbs]),
        )
        found = [
            f
            for f in dc.check_duplicates(
                all_scan, list(splits) + ["val"] * 10, list(labels) + [labels[i] for i in src], classes
            )
            if f.check == "split-leakage"
        ]
        pairs = {tuple(sorted(p)) for p in (found[0].data["pairs"] if found else [])}
        truth = {tuple(sorted((str(paths[i]), str(c)))) for i, c in zip(src, copies)}
        p, r = _pr(pairs, truth)
        planted.append(
            {
                "seed": seed,
                "pairs": len(pairs),
                "precision": p,
                "recall": r,
                "severity": found[0].severity if found else None,
                "copies": copy_stats,
            }
        )
    return {
        "clean_leakage_pairs": len(clean[0].data["pairs"]) if clean else 0,
        "clean_leakage_severity": clean[0].severity if clean else None,
        "old_rule_clean_cross_split_pairs": old_cross,
        "planted": planted,
    }


def _mean(values):
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 3) if values else None


def _span(values):
    values = [v for v in values if v is not None]
    return [round(float(min(values)), 2), round(float(max(values)), 2)] if values else None


def summarise(per: dict) -> dict:
    out = {}
    for group, names in GROUPS.items():
        g: dict = {}
        rows = [dict(r, dataset=n) for n in names for r in per[n]["label_noise"]]
        for rate in (0.05, 0.15):
            sel = [r for r in rows if r["rate"] == rate]
            g[f"label_issues_{rate:.0%}"] = {
                "precision": _mean(r["precision"] for r in sel),
                "precision_range": _span(r["precision"] for r in sel),
                "recall": _mean(r["recall"] for r in sel),
                "recall_range": _span(r["recall"] for r in sel),
                "first_pass_precision": _mean(r["first_pass_precision"] for r in sel),
                "first_pass_recall": _mean(r["first_pass_recall"] for r in sel),
                "severities": {s: sum(r["severity"] == s for r in sel) for s in ("high", "medium", "low", None)},
                "runs": len(sel),
            }
        clean = [r for r in rows if r["rate"] == 0.0]
        g["label_issues_clean"] = {
            "severities": {s: sum(r["severity"] == s for r in clean) for s in ("high", "medium", "low", None)},
            "listed_fraction": _span(r["listed_fraction"] for r in clean),
            "confusable_pairs": {r["dataset"]: r["confusable_pairs"] for r in clean if r["seed"] == 0},
        }
        conf = [r for n in names for r in per[n]["confusion"]]
        g["planted_confusion"] = {
            "found": sum(r["found"] for r in conf),
            "runs": len(conf),
            "label_issues_high": sum(r["label_issues_severity"] == "high" for r in conf),
        }
        leak = [dict(r, dataset=n) for n in names for r in per[n]["leakage"]["planted"]]
        g["leakage_planted"] = {
            "precision": _mean(r["precision"] for r in leak),
            "recall": _mean(r["recall"] for r in leak),
            "recall_by_dataset": {n: _mean(r["recall"] for r in leak if r["dataset"] == n) for n in names},
        }
        g["leakage_planted"]["severities"] = {s: sum(r["severity"] == s for r in leak) for s in ("high", "low", None)}
        for key in ("feature_cosine", "thumb_corr", "hash_bits"):
            g["leakage_planted"][f"copy_{key}_range"] = _span(v for r in leak for v in r["copies"][key])
        g["leakage_clean_pairs"] = {n: per[n]["leakage"]["clean_leakage_pairs"] for n in names}
        g["leakage_clean_severity"] = {n: per[n]["leakage"]["clean_leakage_severity"] for n in names}
        g["old_rule_clean_cross_split_pairs"] = {
            n: per[n]["leakage"]["old_rule_clean_cross_split_pairs"] for n in names
        }
        g["doctor_clean_high"] = {n: per[n]["doctor_clean_high"] for n in names}
        out[group] = g
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from defaults import BUILDERS

    from headstart.config import DataConfig
    from headstart.data.index import load_dataset
    from headstart.diagnose import doctor
    from headstart.diagnose.features import extract

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/hs_doctor_data")
    ap.add_argument("--datasets", nargs="*", default=[n for names in GROUPS.values() for n in names])
    args = ap.parse_args()
    root = Path(args.root)
    t0, c0 = time.perf_counter(), _cpu()
    per: dict = {}
    for name in args.datasets:
        if not (root / name / "train").is_dir():
            BUILDERS[name](root / name)
        t, c = time.perf_counter(), _cpu()
        index = load_dataset(DataConfig(path=root / name), seed=0)
        rows = [(s, split) for split, samples in index.splits.items() for s in samples]
        paths = [s.path for s, _ in rows]
        labels = np.array([s.label for s, _ in rows])
        splits = [split for _, split in rows]
        feats = extract(paths, "mobilenetv2_100", SIZE)
        with tempfile.TemporaryDirectory() as tmp:
            per[name] = {
                "images": len(paths),
                "classes": len(index.classes),
                "label_noise": label_noise(feats, labels, index.classes, paths),
                "confusion": planted_confusion(feats, labels, index.classes, paths),
                "leakage": leakage(paths, labels, splits, index.classes, feats, Path(tmp)),
            }
        findings = doctor(root / name, model="mobilenetv2_100", image_size=SIZE)
        per[name]["doctor_clean_high"] = [f.check for f in findings if f.severity == "high"]
        per[name]["doctor_clean_medium"] = [f.check for f in findings if f.severity == "medium"]
        per[name]["seconds"], per[name]["cpu_seconds"] = round(time.perf_counter() - t, 1), round(_cpu() - c, 1)
        print(
            name,
            json.dumps({k: v for k, v in per[name].items() if k not in ("label_noise",)}, default=str)[:1500],
            flush=True,
        )
    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''}, torch threads 1".strip(),
        "feature_model": "mobilenetv2_100",
        "image_size": SIZE,
        "groups": GROUPS,
        "summary": summarise(per) if set(args.datasets) == {n for v in GROUPS.values() for n in v} else None,
        "per_dataset": per,
        "seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(_cpu() - c0, 1),
    }
    out = ROOT / "benchmarks" / "results" / "doctor_precision.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results["summary"], indent=1, default=str))
    print(f"{results['seconds']} s wall, {results['cpu_seconds']} CPU s -> {out}")


if __name__ == "__main__":
    main()
