"""A detection fit with a YOLO detector from Ultralytics (``--detector yolo11n``; the ``yolo``
extra): headstart's data -> the YOLO layout in the run folder -> Ultralytics' trainer ->
headstart's COCO evaluation of the model's predictions -> the same run folder as the torchvision
detectors (task detect, metrics.json, predictions.json, plots, report, the model bundle as
safetensors + the model YAML + class names), written by the same function
(:func:`headstart.workflows.detection_outputs.save_detection_run`).

As for the engine's detectors: tune's trial callbacks see every epoch (pruning on val_map, the
study's deadline), and ``--resume`` continues from headstart's own checkpoint, written after every
epoch without any pickle of Ultralytics (:mod:`headstart.tasks.detection.yolo.checkpoint`, which says
when the resumed run is exact). What Ultralytics' trainer owns: ``--monitor`` is val_map only (its
best epoch is the one with the best val mAP50-95), and its early stopping (``--patience``).
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
    resume = None
    if cfg.resume:  # before any heavy work: the checkpoint headstart wrote (tensors and plain values only)
        from headstart.tasks.detection.yolo import checkpoint

        resume = checkpoint.read(run.checkpoint_dir / checkpoint.CHECKPOINT_NAME)
    index = _load_data(cfg, run, console)
    dev = resolve_device(cfg.train.device, amp=cfg.train.amp, channels_last=False)
    cfg, weights, stages, args = _plan(cfg, index, dev, run, console)
    if not cfg.resume:
        run.write_config(cfg.to_yaml())
    outcome = _train(cfg, index, weights, stages, args, console, verbose, callbacks, run, resume)
    metrics, detections = _evaluate(cfg, index, outcome, dev, args, t_start)
    metrics["ultralytics"]["version"] = ultralytics.__version__
    return _save(cfg, index, outcome, weights, run, metrics, detections, console)


def _load_data(cfg: FitConfig, run: RunFolder, console):
    from headstart.data.detection import load_detection_dataset, save_detection_split

    d = cfg.data
    index = load_detection_dataset(
        d.path,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
        strict=d.strict,
        seed=cfg.train.seed,
        split_file=run.split_path if cfg.resume else None,
    )
    console.print(index.summary().format())
    if not cfg.resume:
        save_detection_split(index, run.split_path)
    return index


def _plan(cfg: FitConfig, index, dev, run: RunFolder, console):
    """Every auto resolved, the weights found, the dataset written as a YOLO layout, and
    Ultralytics' arguments; the resolved arguments go into config.yaml under ``yolo:``."""
    from headstart.tasks.detection.choices import resolve_choices
    from headstart.tasks.detection.yolo.layout import write_yolo_dataset
    from headstart.tasks.detection.yolo.recipe import OWNED_ARGS, check_passthrough, train_args
    from headstart.tasks.detection.yolo.train import YoloStage
    from headstart.tasks.detection.yolo.weights import find_yolo_weights

    detector = cfg.detect.detector
    extra = check_passthrough(cfg.yolo)
    weights = find_yolo_weights(detector, explicit=cfg.model.weights) if cfg.model.pretrained else None
    # the input size and Ultralytics' recipe, as tune's trial 0 resolves them (tasks/detection/choices.py)
    cfg, reasons = resolve_choices(cfg, index.splits["train"], device_type=dev.device.type)
    image_size = cfg.model.image_size
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


def _train(cfg: FitConfig, index, weights, stages, args, console, verbose: bool, callbacks, run: RunFolder, resume):
    from safetensors.torch import load_file

    from headstart.tasks.detection.yolo import yaml_name
    from headstart.tasks.detection.yolo.model import build_yolo_model
    from headstart.tasks.detection.yolo.train import train_stages

    model = build_yolo_model(yaml_name(cfg.detect.detector), index.num_classes)
    state = load_file(str(weights.path)) if weights is not None else None
    from headstart.tasks.detection.yolo.checkpoint import CHECKPOINT_NAME

    return train_stages(
        model,
        stages,
        args,
        state=state,
        log=console.print,
        verbose=verbose,
        callbacks=callbacks,
        checkpoint_path=run.checkpoint_dir / CHECKPOINT_NAME,
        resume=resume,
    )


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
    from headstart._io import atomic_write_text
    from headstart.data.box_dataset import box_preprocessing
    from headstart.tasks.detection.models import DetectorSpec
    from headstart.tasks.detection.yolo.model import model_yaml_text
    from headstart.workflows.detection_outputs import save_detection_run

    split, size = metrics["split"], cfg.model.image_size
    pre = box_preprocessing(size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    spec = DetectorSpec(
        cfg.detect.detector, cfg.detect.detector, index.num_classes, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    )
    atomic_write_text(Path(run.model_dir) / "model.yaml", model_yaml_text(outcome.model))
    yolo = {
        "model_yaml": "model.yaml",
        "iou": 0.7,
        "backend": "ultralytics",
        "ultralytics_version": metrics["ultralytics"]["version"],
    }
    return save_detection_run(
        cfg,
        index,
        run,
        history=outcome.history,
        metrics=metrics,
        detections=detections,
        state_dict=outcome.model.state_dict(),
        architecture=cfg.detect.detector,
        num_outputs=index.num_classes,
        preprocessing=pre.to_dict(),
        weights=weights,
        model_extra={"detector": spec.to_dict(), "yolo": yolo},
        console=console,
        summary_note=f"; Ultralytics' own mAP on the same split {metrics['ultralytics'][split + '_map']:.4f}",
    )
