"""Detection benchmark: headstart's default detection fit against plain torchvision loops of the
tutorial kind, on glyphs composited onto real photos (benchmarks/detection_data.py), train and test
on disjoint photo backgrounds.

The plain loop is what torchvision's detection tutorial teaches, on the same backbone
(mobilenetv2_100 with its real ImageNet weights, under the same FPN): SGD (lr 0.005, momentum 0.9,
weight decay 5e-4) with a step decay, horizontal flips only, torchvision's default (COCO) anchors,
batch 4, a fixed number of epochs; its variants are the three detectors and the backbone's
BatchNorm trained or frozen, and the best variant is picked on val mAP (its test mAP is what we
compare with). Images are decoded once and kept in memory for the plain loop too, so the time
compares recipes, not JPEG decoding.

    python benchmarks/detection.py --data runs/detection-data [--epochs 12] [--variants all]
        [--results benchmarks/results/detection.json]

Prints and saves, per run: test mAP, mAP50, val mAP, CPU seconds (process time, all threads),
wall seconds and training images/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def _load_split(data: Path, split: str, size: int):
    """(images as float CHW at the input size, targets, BoxSamples) for ``split``."""
    from headstart.data.box_dataset import BoxDataset, box_preprocessing
    from headstart.data.box_transforms import build_box_transform
    from headstart.data.detection import load_detection_dataset

    index = load_detection_dataset(data, seed=0)
    pre = box_preprocessing(size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    ds = BoxDataset(index.splits[split], pre, build_box_transform("none", train=False))
    items = [ds[i] for i in range(len(ds))]
    return items, index.splits[split], index.classes


def plain_loop(data: Path, detector: str, bn: str, *, epochs: int, size: int = 320, batch: int = 4, seed: int = 0):
    """The tutorial recipe; returns val and test mAP, and the time spent."""
    from safetensors.torch import load_file
    from torchvision.transforms import v2

    from headstart.models.resolve import resolve_weights
    from headstart.tasks.detection.metrics import coco_metrics
    from headstart.tasks.detection.models import DetectorSpec, create_detector
    from headstart.tasks.detection.task import ground_truth

    torch.manual_seed(seed)
    train, _, classes = _load_split(data, "train", size)
    val, val_samples, _ = _load_split(data, "val", size)
    test, test_samples, _ = _load_split(data, "test", size)
    state = load_file(str(resolve_weights("mobilenetv2_100").path))
    spec = DetectorSpec(detector, "mobilenetv2_100", len(classes), size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                        fpn_channels=128)
    model = create_detector(spec, backbone_state=state, freeze_bn=(bn == "frozen"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, round(epochs * 0.75)), gamma=0.1)
    flip = v2.RandomHorizontalFlip(0.5)
    t0, c0 = time.perf_counter(), time.process_time()
    seen, train_time = 0, 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train)).tolist()
        t_epoch = time.perf_counter()
        for i in range(0, len(order), batch):
            images, targets = [], []
            for j in order[i : i + batch]:
                image, target = flip(*train[j])
                images.append(image)
                targets.append({"boxes": target["boxes"].as_subclass(torch.Tensor),
                                "labels": target["labels"] - 1 + spec.first_label})
            losses = model(images, targets)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(images)
        train_time += time.perf_counter() - t_epoch
        sched.step()

    def score(items, samples):
        model.eval()
        dets = []
        with torch.no_grad():
            for k in range(0, len(items), 8):
                chunk = items[k : k + 8]
                for (_, target), out in zip(chunk, model([im for im, _ in chunk])):
                    dets.append({"image_id": int(target["image_id"]), "boxes": (out["boxes"] / target["scale"]).numpy(),
                                 "scores": out["scores"].numpy(), "labels": (out["labels"] - spec.first_label).numpy()})
        return coco_metrics(ground_truth(samples), dets, classes)

    v, t = score(val, val_samples), score(test, test_samples)
    return {"recipe": f"plain {detector}, BN {bn}", "detector": detector, "bn": bn, "epochs": epochs,
            "val_map": v["map"], "test_map": t["map"], "test_map50": t["map50"],
            "cpu_s": round(time.process_time() - c0, 1), "wall_s": round(time.perf_counter() - t0, 1),
            "train_images_per_s": round(seen / max(train_time, 1e-9), 2)}


def _live_val_probe():
    """A callback that also scores the live weights on val after each epoch of a run with a weight
    average (which is what validation sees): one run then answers "with the average or without".
    Its CPU time is counted apart and left out of the run's."""
    from headstart.engine.callbacks import Callback

    class LiveVal(Callback):
        cpu_s = 0.0

        def on_epoch_end(self, trainer, row):
            if trainer.ema is not None:
                c0 = time.process_time()
                row["live_val_map"] = trainer.task.validate(trainer.stages[trainer.state.stage_index])["val_map"]
                self.cpu_s += time.process_time() - c0

    return LiveVal()


def headstart_fit(data: Path, out: Path, *, live_val: bool = False, **kwargs):
    import headstart

    probe = _live_val_probe() if live_val else None
    t0, c0 = time.perf_counter(), time.process_time()
    result = headstart.fit(data, out=out, verbose=False, model="mobilenetv2_100", callbacks=[probe] if probe else (),
                           **kwargs)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    rows = [r for r in result.history if r["stage"] == "finetune"] or result.history
    run = {"recipe": "headstart default" + (f" {kwargs}" if kwargs else ""), "detector": result.config.detect.detector,
           "epochs": len(result.history), "best_epoch": result.metrics["best_epoch"],
           "val_map": max(r["val_map"] for r in result.history),
           "test_map": result.metrics["map"], "test_map50": result.metrics["map50"],
           "cpu_s": round(cpu - (probe.cpu_s if probe else 0.0), 1), "wall_s": round(wall, 1),
           "train_images_per_s": round(sum(r["images_per_s"] for r in rows) / len(rows), 2),
           "val_map_per_epoch": [round(r["val_map"], 4) for r in result.history]}
    if probe is not None and any("live_val_map" in r for r in result.history):
        live = [round(r.get("live_val_map", r["val_map"]), 4) for r in result.history]
        run.update({"live_val_map_per_epoch": live, "live_val_map": max(live), "probe_cpu_s": round(probe.cpu_s, 1)})
    return run


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/detection-bench"))
    ap.add_argument("--epochs", type=int, default=12, help="epochs of the plain loops")
    ap.add_argument("--variants", default="all", help="all, or comma-separated detector:bn pairs, e.g. fcos:frozen")
    ap.add_argument("--skip-headstart", action="store_true")
    ap.add_argument("--headstart-args", default="", help="extra fit kwargs as JSON, e.g. '{\"epochs\": 20}'")
    ap.add_argument("--random-init", action="store_true", help="also run headstart's default without pretrained weights")
    ap.add_argument("--live-val", action="store_true",
                    help="with a weight average, also score the live weights on val each epoch (CPU counted apart)")
    ap.add_argument("--results", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    runs = []
    if not args.skip_headstart:
        extra = json.loads(args.headstart_args) if args.headstart_args else {}
        runs.append(headstart_fit(args.data, args.out / "headstart", live_val=args.live_val, **extra))
        print(json.dumps(runs[-1]), flush=True)
        if args.random_init:
            runs.append(headstart_fit(args.data, args.out / "random-init", pretrained=False, **extra))
            runs[-1]["recipe"] = "headstart default, random init"
            print(json.dumps(runs[-1]), flush=True)
    variants = ([(d, b) for d in ("fasterrcnn", "fcos", "retinanet") for b in ("frozen", "trained")]
                if args.variants == "all" else [tuple(v.split(":")) for v in args.variants.split(",") if v])
    for detector, bn in variants:
        runs.append(plain_loop(args.data, detector, bn, epochs=args.epochs))
        print(json.dumps(runs[-1]), flush=True)
    plain = [r for r in runs if r["recipe"].startswith("plain")]
    best = max(plain, key=lambda r: r["val_map"]) if plain else None
    summary = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "data": str(args.data), "runs": runs,
               "best_plain_on_val": best["recipe"] if best else None}
    if best and not args.skip_headstart:
        summary["headstart_minus_best_plain_test_map"] = round(runs[0]["test_map"] - best["test_map"], 4)
        summary["cpu_ratio_headstart_over_best_plain"] = round(runs[0]["cpu_s"] / best["cpu_s"], 2)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
