"""Recall and false alarms of ``headstart doctor`` on planted problems of several strengths.

Base data: scikit-learn's handwritten digits (real images), written as 32 px PNGs with dark ink on
a random light tint. Features: mobilenetv2_100 (ImageNet weights from the store) at 96 px, else
test_resnet. Grid:

* label noise (5/10/20% of labels flipped, 3 seeds): was a label-issues finding of severity
  medium or high raised, and precision / recall of the listed images against the flipped ones
  (precision per check on several datasets: benchmarks/doctor_precision.py);
* leaked duplicates (1/3/10 train images copied into val as resized JPEGs): pairs found;
* class imbalance (ratio 2/5/20), grayscale fraction (50/90/100%), normalisation (ImageNet values,
  off by 0.01, 0.5/0.5, rescale-only), LR spikes (x1.2/x2/x4) on fabricated histories: found or not;
* false alarms: high or medium findings of a full doctor run on clean subsets (3 seeds).

Run: ``python benchmarks/doctor_recall.py`` (about 2-4 minutes on 2 CPU cores). Raw results go to
``benchmarks/results/doctor_recall.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def digits(per_class: int, classes=range(10), seed: int = 0, colour: bool = True):
    from tests.diagnose.conftest import digit_images

    return digit_images(tuple(classes), per_class=per_class, colour=colour, seed=seed)


def main() -> None:
    import torch

    torch.set_num_threads(2)
    from headstart.diagnose import data_checks as dc
    from headstart.diagnose import doctor
    from headstart.diagnose import run_checks as rc
    from headstart.diagnose.features import cross_val_probe, extract, pick_feature_model, reprobe_without
    from headstart.diagnose.label_checks import check_label_issues, find_label_issues
    from tests.diagnose.conftest import write_images

    model = pick_feature_model("auto", None) or "test_resnet"
    size = 96
    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
                     "feature_model": model, "image_size": size}
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="doctor_bench_"))

    # label noise: features once, labels flipped many ways
    images = digits(50)
    paths = write_images(tmp / "base", images)
    labels = np.array([int(n[-1]) for n, _ in images])
    feats = extract(paths, model, size)
    rows = []
    for rate in (0.05, 0.10, 0.20):
        for seed in range(3):
            rng = np.random.default_rng(seed)
            flipped = rng.choice(len(labels), int(rate * len(labels)), replace=False)
            noisy = labels.copy()
            noisy[flipped] = (noisy[flipped] + rng.integers(1, 10, len(flipped))) % 10
            probe = cross_val_probe(feats, noisy, 10, seed=seed)
            # as the doctor does: flag, re-fit the probe without the flagged images, flag again
            probe = reprobe_without(probe, feats, find_label_issues(noisy, probe.pred_probs), seed=seed)
            found = [f for f in check_label_issues(noisy, probe.pred_probs, paths, [str(i) for i in range(10)],
                                                   probe_error=probe.kept_error) if f.check == "label-issues"]
            flagged = {str(p) for p in (r["path"] for r in found[0].data["images"])} if found else set()
            truth = {str(paths[i]) for i in flipped}
            tp = len(flagged & truth)
            rows.append({"rate": rate, "seed": seed, "raised": bool(found and found[0].severity in ("high", "medium")),
                         "severity": found[0].severity if found else None, "flagged": len(flagged), "flipped": len(truth),
                         "precision": tp / max(len(flagged), 1), "recall": tp / len(truth), "probe_error": probe.kept_error})
    results["label_noise"] = rows

    # leaked duplicates: resized JPEG copies of train images in val
    dup_rows = []
    clean_scan = dc.scan_images(paths)
    for n in (1, 3, 10):
        src = [paths[i] for i in range(0, 10 * n, 10)]
        copies = []
        for p in src:
            c = tmp / f"copy_{n}_{p.stem}.jpg"
            Image.open(p).resize((40, 40)).save(c, quality=85)
            copies.append(c)
        scan = dc.scan_images(paths + copies)
        splits = ["train"] * len(paths) + ["val"] * len(copies)
        labs = list(labels) + [int(labels[paths.index(p)]) for p in src]
        found = [f for f in dc.check_duplicates(scan, splits, labs, [str(i) for i in range(10)]) if f.check == "split-leakage"]
        pairs = {tuple(sorted(pr)) for pr in (found[0].data["pairs"] if found else [])}
        hit = sum(any(str(c) in pr for pr in pairs) for c in copies)
        dup_rows.append({"leaked": n, "found": hit, "recall": hit / n})
    results["leakage"] = dup_rows
    results["leakage_false_pairs_clean"] = sum(len(f.data.get("pairs", [])) for f in dc.check_duplicates(
        clean_scan, ["train"] * len(paths), list(labels), [str(i) for i in range(10)]))

    # counts, colour, preprocessing, LR
    results["imbalance"] = [{"ratio": r, "found": bool(dc.check_class_balance({"a": 40 * r, "b": 40}))} for r in (2, 5, 20)]
    results["grayscale"] = [{"fraction": g, "found": bool(dc.check_grayscale(np.arange(100) < g * 100))} for g in (0.5, 0.9, 1.0)]
    imagenet = {"input_size": 224, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    variants = {"imagenet": imagenet, "off_by_0.01": {**imagenet, "mean": [0.495, 0.466, 0.416]},
                "half": {**imagenet, "mean": [0.5] * 3, "std": [0.5] * 3}, "rescale_only": {"rescale": 1 / 255, "size": 224}}
    results["normalisation"] = [{"variant": k, "found": [f.check for f in rc.check_preprocessing(v, imagenet)]} for k, v in variants.items()]
    lr_rows = []
    for factor in (1.2, 2.0, 4.0):
        hist = [{"epoch": 1, "stage": "finetune", "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5},
                {"epoch": 2, "stage": "finetune", "train_loss": 0.8, "train_accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.6},
                {"epoch": 3, "stage": "finetune", "train_loss": 0.8 * factor, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.55}]
        lr_rows.append({"spike": factor, "found": bool(rc.check_lr_too_high(hist))})
    results["lr_spike"] = lr_rows

    # false alarms: full doctor on clean subsets
    fa = []
    for seed in range(3):
        root = tmp / f"clean{seed}"
        write_images(root, digits(30, classes=range(4), seed=seed + 10))
        findings = doctor(root, model=model, image_size=size, seed=seed)
        fa.append({"seed": seed, "high": [f.check for f in findings if f.severity == "high"],
                   "medium": [f.check for f in findings if f.severity == "medium"]})
    results["clean_false_alarms"] = fa
    results["seconds"] = round(time.perf_counter() - t0, 1)

    out = ROOT / "benchmarks" / "results" / "doctor_recall.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for rate in (0.05, 0.10, 0.20):
        sel = [r for r in rows if r["rate"] == rate]
        print(f"label noise {rate:.0%}: raised {sum(r['raised'] for r in sel)}/{len(sel)}, precision"
              f" {np.mean([r['precision'] for r in sel]):.2f}, recall {np.mean([r['recall'] for r in sel]):.2f}")
    print("leakage", dup_rows, "false pairs on clean", results["leakage_false_pairs_clean"])
    print("imbalance", results["imbalance"], "grayscale", results["grayscale"])
    print("normalisation", results["normalisation"], "lr", lr_rows)
    print("clean false alarms", fa, f"({results['seconds']} s, {model})")


if __name__ == "__main__":
    main()
