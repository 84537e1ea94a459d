"""A detection fit with a YOLO detector from Ultralytics (``--detector yolo11n``; the ``yolo``
extra): headstart's data -> the YOLO layout in the run folder -> Ultralytics' trainer ->
headstart's COCO evaluation of the model's predictions -> the same run folder as the torchvision
detectors (task detect, metrics.json, predictions.json, plots, report, the model bundle as
safetensors + the model YAML + class names).

What Ultralytics' trainer owns here, and headstart therefore does not offer for YOLO runs:
``--resume`` (its resume reads its own pickled ``last.pt``), tune's trial callbacks, ``--monitor``
other than val_map (its best epoch is the one with the best val mAP50-95).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from headstart.config import FitConfig
from headstart.run_folder import RunFolder
from headstart.workflows.result import FitResult

__all__ = ["run"]


def run(cfg: FitConfig, run: RunFolder, *, console, verbose: bool = True, callbacks: Sequence[Any] = ()) -> FitResult:
    from headstart.tasks.base import UnsupportedForTask
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    detector = cfg.detect.detector
    if cfg.resume:
        raise UnsupportedForTask(
            f"--resume is not available for YOLO detectors ({detector}): Ultralytics resumes from"
            " its own pickled last.pt, which headstart does not load. Start the run again."
        )
    if callbacks:
        raise UnsupportedForTask(
            f"training callbacks (tune's trials) are not available for YOLO detectors ({detector})."
        )
    if cfg.train.monitor not in ("auto", "val_map"):
        raise UnsupportedForTask(
            f"--monitor {cfg.train.monitor} is not available for YOLO detectors: Ultralytics keeps"
            " the epoch with the best val mAP50-95 (val_map)."
        )
    ultralytics = load_ultralytics()  # fails here, before any data is read, when the extra is missing
    import torch

    from headstart.engine.device import resolve_device

    t_start = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    index = _load_data(cfg, run, console)
    dev = resolve_device(cfg.train.device, amp=cfg.train.amp, channels_last=False)
    cfg, weights, stages, args = _plan(cfg, index, dev, run, console)
    run.write_config(cfg.to_yaml())
    outcome = _train(cfg, index, weights, stages, args, console, verbose)
    metrics, detections = _evaluate(cfg, index, outcome, dev, args, t_start)
    metrics["ultralytics"]["version"] = ultralytics.__version__
    return _save(cfg, index, outcome, weights, run, metrics, detections, console)


def _load_data(cfg: FitConfig, run: RunFolder, console):
    from headstart.data.detection import load_detection_dataset, save_detection_split

    d = cfg.data
    index = load_detection_dataset(
        d.path, val_fraction=d.val_fraction, test_fraction=d.test_fraction, strict=d.strict, seed=cfg.train.seed
    )
    console.print(index.summary().format())
    save_detection_split(index, run.split_path)
    return index


def _plan(cfg: FitConfig, index, dev, run: RunFolder, console):
    """Every auto resolved, the weights found, the dataset written as a YOLO layout, and
    Ultralytics' arguments; the resolved arguments go into config.yaml under ``yolo:``."""
    from headstart.tasks.detection.choices import auto_image_size
    from headstart.tasks.detection.yolo.layout import write_yolo_dataset
    from headstart.tasks.detection.yolo.recipe import OWNED_ARGS, check_passthrough, resolve_yolo_choices, train_args
    from headstart.tasks.detection.yolo.train import YoloStage
    from headstart.tasks.detection.yolo.weights import find_yolo_weights

    detector = cfg.detect.detector
    extra = check_passthrough(cfg.yolo)
    weights = find_yolo_weights(detector, explicit=cfg.model.weights) if cfg.model.pretrained else None
    image_size = cfg.model.image_size
    if image_size is None:
        image_size = auto_image_size(index.splits["train"], dev.device.type)
        console.print(f"input size {image_size}px: the training images' median longer side (256-512 on a CPU)")
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": detector, "image_size": image_size})})
    cfg, reasons = resolve_yolo_choices(
        cfg, index.splits["train"], device_type=dev.device.type, has_weights=weights is not None
    )
    for reason in reasons:
        console.print(reason)
    layout = write_yolo_dataset(index.splits, index.classes, run.path / "yolo" / "data")
    args = train_args(cfg, device=str(dev.device), data_yaml=str(layout["yaml"]), project=str(run.path / "yolo"))
    args.update(extra)
    from headstart.tasks.detection.yolo import yaml_name
    from headstart.tasks.detection.yolo.model import backbone_layers, build_yolo_model

    probe = build_yolo_model(yaml_name(detector), index.num_classes)
    frozen = backbone_layers(probe)
    del probe
    t, d = cfg.train, cfg.detect
    epochs = int(extra.get("epochs", t.epochs))
    if t.strategy == "head":
        stages = [YoloStage("head", epochs, frozen)]
    elif t.strategy == "full":
        stages = [YoloStage("full", epochs, 0)]
    else:
        stages = [YoloStage("head", d.head_epochs, frozen), YoloStage("full", epochs, 0)]
    # config.yaml: the pass-through as given, and under yolo.resolved every argument the run used
    # (regenerated by each run, so a config.yaml reused as a template does not pin them)
    resolved = {k: v for k, v in args.items() if k not in OWNED_ARGS and k != "epochs"}
    cfg = cfg.model_copy(update={"yolo": {**extra, "resolved": {**resolved, "stages": [s.__dict__ for s in stages]}}})
    placed = ", ".join(f"{n} {how}" for how, n in sorted(layout["placed"].items()))
    console.print(f"YOLO layout written under {run.path / 'yolo' / 'data'} ({placed}); the dataset is not modified")
    console.print(
        f"detector {detector} (Ultralytics, {'weights from ' + weights.source if weights else 'random init from its YAML'}),"
        f" input {image_size}px, strategy {t.strategy} ("
        + " + ".join(f"{s.epochs} {s.name}" for s in stages)
        + f" epochs), augment {cfg.augment.preset}, batch {args['batch']}, {args['optimizer']} lr {args['lr0']:.2e}"
    )
    if weights is None and cfg.model.pretrained:
        console.print(
            f"no converted weights for {detector} in the weights store: training from the model YAML (random"
            f" init). To start from Ultralytics' weights: headstart weights import {detector}.pt --model"
            f" {detector} --trust-pickle"
        )
    return cfg, weights, stages, args


def _train(cfg: FitConfig, index, weights, stages, args, console, verbose: bool):
    from safetensors.torch import load_file

    from headstart.tasks.detection.yolo import yaml_name
    from headstart.tasks.detection.yolo.model import build_yolo_model
    from headstart.tasks.detection.yolo.train import train_stages

    model = build_yolo_model(yaml_name(cfg.detect.detector), index.num_classes)
    state = load_file(str(weights.path)) if weights is not None else None
    return train_stages(model, stages, args, state=state, log=console.print, verbose=verbose)


def _evaluate(cfg: FitConfig, index, outcome, dev, args, t_start: float):
    """headstart's COCO evaluation of the best weights' predictions on the test split (val when
    there is none), exactly as for the torchvision detectors; Ultralytics' own mAP beside it."""
    from torch.utils.data import DataLoader

    from headstart.data.box_dataset import BoxDataset, box_preprocessing, collate_boxes
    from headstart.data.box_transforms import build_box_transform
    from headstart.data.dataset import ImageCache
    from headstart.tasks.detection.metrics import coco_metrics
    from headstart.tasks.detection.task import ground_truth, predict_boxes
    from headstart.tasks.detection.yolo.model import YoloDetector
    from headstart.tasks.detection.yolo.train import ultralytics_test_map

    split = "test" if index.splits.get("test") else "val"
    pre = box_preprocessing(cfg.model.image_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    dataset = BoxDataset(
        index.splits[split],
        pre,
        build_box_transform("none", train=False),
        ImageCache("memory", None, dataset_root=index.root),
    )
    loader = DataLoader(dataset, batch_size=args["batch"], shuffle=False, collate_fn=collate_boxes)
    detector = YoloDetector(outcome.model, cfg.model.image_size, max_det=cfg.detect.max_det).to(dev.device)
    detections = predict_boxes(detector, loader, dev, first_label=0)
    detector.to("cpu")
    metrics = coco_metrics(ground_truth(index.splits[split]), detections, index.classes)
    theirs = ultralytics_test_map(outcome.model, args, split)
    metrics.update(
        {
            "split": split,
            "best_epoch": outcome.best_epoch,
            "monitor": "val_map",
            "best_monitor_value": outcome.best_value,
            "epochs_run": len(outcome.history),
            "fit_seconds": round(time.perf_counter() - t_start, 2),
            "ultralytics": {
                "note": "Ultralytics' own validator on the same split and weights (its interpolation and"
                " matching differ from COCO's: headstart's map above is the comparable number)",
                f"{split}_map": theirs["map"],
                f"{split}_map50": theirs["map50"],
                "val_map_best": outcome.final_val.get("map"),
                "val_map50_best": outcome.final_val.get("map50"),
            },
        }
    )
    return metrics, detections


def _save(cfg: FitConfig, index, outcome, weights, run: RunFolder, metrics, detections, console) -> FitResult:
    from headstart._io import atomic_write_json, atomic_write_text
    from headstart._version import __version__
    from headstart.data.box_dataset import box_preprocessing
    from headstart.tasks.detection.matching import pr_curves
    from headstart.tasks.detection.metrics import coco_results, confusion_matrix
    from headstart.tasks.detection.models import DetectorSpec
    from headstart.tasks.detection.plots import (
        plot_confusion_matrix,
        plot_f1_confidence,
        plot_learning_curves,
        plot_pr_curves,
    )
    from headstart.tasks.detection.task import ground_truth
    from headstart.tasks.detection.yolo.model import model_yaml_text
    from headstart.workflows.provenance import provenance

    split = metrics["split"]
    truth = ground_truth(index.splits[split])
    run.write_history(outcome.history)
    run.write_metrics(metrics)
    atomic_write_json(run.path / "predictions.json", coco_results(detections, index.classes))
    curves = pr_curves(truth, detections, index.classes)
    plot_learning_curves(outcome.history, run.plots_dir / "learning_curves.png")
    plot_pr_curves(curves, run.plots_dir / "pr_curves.png")
    plot_f1_confidence(curves, run.plots_dir / "f1_confidence.png")
    plot_confusion_matrix(
        confusion_matrix(truth, detections, index.classes), index.classes, run.plots_dir / "confusion_matrix.png"
    )
    size = cfg.model.image_size
    pre = box_preprocessing(size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    spec = DetectorSpec(
        cfg.detect.detector, cfg.detect.detector, index.num_classes, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    )
    run.save_model(
        outcome.model.state_dict(),
        task="detect",
        architecture=cfg.detect.detector,
        classes=index.classes,
        num_outputs=index.num_classes,
        preprocessing=pre.to_dict(),
        provenance=provenance(__version__, cfg, index, weights),
        extra={
            "detector": spec.to_dict(),
            "conf": cfg.detect.conf if cfg.detect.conf is not None else metrics.get("conf_threshold"),
            "max_det": cfg.detect.max_det,
            "yolo": {
                "model_yaml": "model.yaml",
                "iou": 0.7,
                "backend": "ultralytics",
                "ultralytics_version": metrics["ultralytics"]["version"],
            },
        },
    )
    atomic_write_text(Path(run.model_dir) / "model.yaml", model_yaml_text(outcome.model))
    from headstart.reporting.fit_hooks import report_after_fit

    console.print(
        f"{split}: mAP {metrics['map']:.4f}, mAP50 {metrics['map50']:.4f}, mAP75 {metrics['map75']:.4f} on"
        f" {metrics['n_images']} images ({metrics['n_boxes']} boxes); Ultralytics' own mAP on the same split"
        f" {metrics['ultralytics'][split + '_map']:.4f}. Run folder: {run.path}"
    )
    report_after_fit(run.path, console)
    return FitResult(run.path, cfg, outcome.history, metrics, list(index.classes), None, task="detect")
