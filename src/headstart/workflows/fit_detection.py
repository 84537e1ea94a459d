"""A detection fit, as named steps: data -> resolve every auto -> model -> loaders -> train ->
evaluate -> save. The same engine, callbacks, checkpoints and run folder as classification
(:mod:`headstart.workflows.fit_classification`); what differs is the task object the engine trains
and what is evaluated and saved."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

from headstart.config import FitConfig
from headstart.run_folder import RunFolder
from headstart.workflows.result import FitResult

__all__ = ["run"]


@dataclass
class _Model:
    module: Any
    spec: Any  # DetectorSpec
    weights: Any
    pre: Any
    anchors: Any


def run(cfg: FitConfig, run: RunFolder, *, console, verbose: bool = True, callbacks: Sequence[Any] = ()) -> FitResult:
    import torch

    from headstart.engine import distributed
    from headstart.engine.device import resolve_device
    from headstart.tasks.detection.choices import resolve_detector
    from headstart.tasks.detection.yolo import is_yolo

    # the detector first: `auto` may choose a YOLO one (its imported weights in the store), which has its own workflow
    cfg, why = resolve_detector(cfg, resolve_device(cfg.train.device, amp=False, channels_last=False).device.type)
    if why is not None:
        console.print(why)
    if is_yolo(cfg.detect.detector):  # the Ultralytics backend (headstart[yolo])
        from headstart.workflows import fit_yolo

        return fit_yolo.run(cfg, run, console=console, verbose=verbose, callbacks=callbacks)

    t_start = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    # several processes: rank 0 reads and checks the annotations, writes the run folder (as classification)
    index = distributed.on_main(lambda: load_data(cfg, run, console))
    dev = resolve_device(cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    cfg = resolve_autos(cfg, index, dev, run, console, verbose)
    cfg, model = build_model(cfg, index, run, console)
    dev = dev.prepare(model.module)  # channels_last where it pays (on the CPU too)
    loaders = make_loaders(cfg, index, model, dev, run, verbose, console)
    try:
        trainer, state = train(cfg, index, model, dev, run, loaders, console, verbose, callbacks)
        metrics, detections = evaluate(cfg, index, trainer, dev, loaders, state, t_start)
    finally:
        loaders.close()
    if not distributed.is_main():
        return FitResult(run.path, cfg, state.history, metrics, list(index.classes), None, task="detect")
    return save(cfg, index, model, trainer, run, metrics, detections, state, console)


# ---------------------------------------------------------------------------------------------- steps
def load_data(cfg: FitConfig, run: RunFolder, console):
    """Read, check and split the annotations (COCO, YOLO or VOC) before anything heavy happens."""
    from headstart.data.detection import load_detection_dataset, save_detection_split

    d = cfg.data
    index = load_detection_dataset(d.path, val_fraction=d.val_fraction, test_fraction=d.test_fraction, strict=d.strict,
                                   seed=cfg.train.seed, split_file=run.split_path if cfg.resume else None)
    console.print(index.summary().format())
    if not cfg.resume:
        save_detection_split(index, run.split_path)
    return index


def resolve_autos(cfg: FitConfig, index, dev, run: RunFolder, console, verbose: bool = False) -> FitConfig:
    from headstart.tasks.detection.choices import resolve_choices

    if cfg.model.name == "auto":  # first: a ranking may also choose the input size
        from headstart.select.auto import choose_detection_backbone

        name, size, reason = choose_detection_backbone(cfg, index, dev, run.path, verbose)
        update = {"name": name} if cfg.model.image_size is not None or size is None else {"name": name,
                                                                                        "image_size": size}
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update=update)})
        console.print(reason)
    cfg, reasons = resolve_choices(cfg, index.splits["train"], device_type=dev.device.type)
    for reason in reasons:
        console.print(reason)
    return cfg


def build_model(cfg: FitConfig, index, run: RunFolder, console) -> tuple[FitConfig, _Model]:
    """The backbone's weights (fail fast when missing), its preprocessing, the anchors from the
    training boxes, and the detector; config.yaml is written once everything is decided."""
    from timm.models import get_pretrained_cfg

    from headstart.data.box_dataset import box_preprocessing
    from headstart.models.resolve import resolve_weights
    from headstart.models.zoo import check_model_name
    from headstart.tasks.detection.anchors import choose_anchors
    from headstart.tasks.detection.models import DetectorSpec, create_backbone, create_detector, default_anchor_sizes

    name = cfg.model.name
    if name == "auto":  # resolve_autos ranks the candidates; a caller that skipped it gets the fallback
        from headstart.select.auto import DETECTION_FALLBACK

        name, reason = DETECTION_FALLBACK
        console.print(reason)
    name = check_model_name(name)
    weights = None
    if cfg.model.pretrained:
        weights = resolve_weights(name, explicit=cfg.model.weights, allow_download=cfg.model.allow_download)
    # the mean/std from timm's registry: no model needs building for them
    pcfg = get_pretrained_cfg(name)
    size = cfg.model.image_size
    pre = box_preprocessing(size, getattr(pcfg, "mean", None) or (0.485, 0.456, 0.406),
                            getattr(pcfg, "std", None) or (0.229, 0.224, 0.225))
    detector = cfg.detect.detector
    spec = DetectorSpec(detector, name, index.num_classes, size, tuple(pre.mean), tuple(pre.std),
                        fpn_channels=cfg.detect.fpn_channels)
    backbone = create_backbone(spec)  # built once: its strides size the anchors, then it goes into the detector
    anchors = None
    if detector != "fcos":
        strides = backbone.level_strides
        wh = _train_box_sizes(index.splits["train"], size)
        anchors = choose_anchors(wh, strides, default_anchor_sizes(strides, detector))
        if cfg.detect.anchors == "auto":
            spec = dataclasses.replace(spec, anchor_sizes=anchors.sizes, aspect_ratios=anchors.aspect_ratios)
            console.print(anchors.describe())
        else:
            console.print(f"torchvision's default anchors match {anchors.default_coverage:.0%} of the training boxes"
                          f" at IoU >= 0.5 (from the data: {anchors.coverage:.0%}; detect.anchors=auto)")
    state = _backbone_state(weights) if weights is not None else None
    module = create_detector(spec, backbone_state=state, backbone=backbone)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": name})})
    from headstart.engine.distributed import is_main

    if not cfg.resume and is_main():
        run.write_config(cfg.to_yaml())
    console.print(
        f"detector {detector} on {name} ({'weights from ' + weights.source if weights else 'random init'}),"
        f" input {size}px, strategy {cfg.train.strategy} ({cfg.detect.head_epochs} head + {cfg.train.epochs}"
        f" epochs), augment {cfg.augment.preset}, batch {cfg.train.batch_size}, lr {cfg.train.lr:.2e}"
    )
    return cfg, _Model(module, spec, weights, pre, anchors)


def _train_box_sizes(samples, size: int):
    """(N, 2) widths and heights of the training boxes (ignored ones left out) at the input size."""
    import numpy as np

    rows = [((b[2] - b[0]) * size / max(s.width, s.height), (b[3] - b[1]) * size / max(s.width, s.height))
            for s in samples for b, ignored in zip(s.boxes, s.ignore) if not ignored]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def _backbone_state(weights):
    from safetensors.torch import load_file

    return load_file(str(weights.path))


@dataclass
class _Loaders:
    make: Any
    close: Any
    eval_split: str


def make_loaders(cfg: FitConfig, index, model: _Model, dev, run: RunFolder, verbose: bool,
                 console=None) -> _Loaders:
    from headstart.data.box_dataset import BoxDataset, collate_boxes
    from headstart.data.box_transforms import build_box_transform
    from headstart.data.dataset import ImageCache
    from headstart.data.loaders import loader_factory
    from headstart.engine import distributed
    from headstart.workflows.distributed_steps import warm_cache

    eval_split = "test" if index.splits.get("test") else "val"
    cache_dir = cfg.data.cache_dir or run.cache_dir
    cache = ImageCache(cfg.data.cache, cache_dir if cfg.data.cache == "disk" else None, dataset_root=index.root)
    fill = tuple(int(round(255 * m)) for m in model.pre.mean)
    train_tf = build_box_transform(cfg.augment.preset, hflip=cfg.augment.hflip, zoom=cfg.augment.zoom,
                                   shift=cfg.augment.shift, fill=fill)
    eval_tf = build_box_transform("none", train=False)
    datasets = {"train": BoxDataset(index.splits["train"], model.pre, train_tf, cache),
                "val": BoxDataset(index.splits["val"], model.pre, eval_tf, cache)}
    if index.splits.get("test"):
        datasets["test"] = BoxDataset(index.splits["test"], model.pre, eval_tf, cache)
    warm_cache(cfg, list(datasets.values()), verbose, console)
    world = distributed.world()
    make, close = loader_factory(datasets, batch_size=distributed.per_device_batch(cfg.train.batch_size, world.size),
                                 num_workers=cfg.data.num_workers or 0, pin_memory=dev.is_cuda,
                                 collate_train=collate_boxes, collate_eval=collate_boxes, shard=(world.rank, world.size))
    return _Loaders(make, close, eval_split)


def train(cfg: FitConfig, index, model: _Model, dev, run: RunFolder, loaders: _Loaders, console, verbose: bool,
          callbacks: Sequence[Any]):
    from headstart.engine.callbacks import EarlyStopping, ProgressBar
    from headstart.engine.trainer import Trainer
    from headstart.tasks.detection.strategies import plan_stages
    from headstart.tasks.detection.task import DetectionTask

    task = DetectionTask(model.module, make_loader=loaders.make, dev=dev, classes=index.classes,
                         val_samples=index.splits["val"], weight_decay=cfg.train.weight_decay,
                         backbone_lr_ratio=cfg.detect.backbone_lr_ratio, first_label=model.spec.first_label,
                         frozen_stride=cfg.detect.frozen_stride)
    trainer = Trainer(
        task, plan_stages(cfg), cfg.train, dev=dev, task_name=task.name,
        callbacks=[EarlyStopping(cfg.train.monitor, cfg.train.patience), ProgressBar(console, enabled=verbose),
                   *callbacks],
        checkpoint_dir=run.checkpoint_dir,
    )
    state = trainer.fit(resume=cfg.resume)
    return trainer, state


def evaluate(cfg: FitConfig, index, trainer, dev, loaders: _Loaders, state, t_start: float):
    """COCO metrics on the test split (val when there is none), with the best weights."""
    from headstart.tasks.detection.metrics import coco_metrics
    from headstart.tasks.detection.task import ground_truth, predict_boxes

    detections = predict_boxes(trainer.model, loaders.make(loaders.eval_split, seed=0), dev, trainer.task.first_label)
    metrics = coco_metrics(ground_truth(index.splits[loaders.eval_split]), detections, index.classes)
    metrics.update(
        {"split": loaders.eval_split, "best_epoch": state.best_epoch, "monitor": trainer.monitor,
         "best_monitor_value": state.best_value, "epochs_run": len(state.history),
         "fit_seconds": round(time.perf_counter() - t_start, 2)}
    )
    return metrics, detections


def save(cfg: FitConfig, index, model: _Model, trainer, run: RunFolder, metrics, detections, state,
         console) -> FitResult:
    import torch

    from headstart.workflows.detection_outputs import save_detection_run

    if model.anchors is not None:
        metrics["anchors"] = {"sizes": [list(s) for s in model.anchors.sizes],
                              "aspect_ratios": list(model.anchors.aspect_ratios),
                              "coverage": model.anchors.coverage, "default_coverage": model.anchors.default_coverage,
                              "used": cfg.detect.anchors}
    trainer.model.to("cpu").to(memory_format=torch.contiguous_format)
    return save_detection_run(
        cfg, index, run, history=state.history, metrics=metrics, detections=detections,
        state_dict=trainer.model.state_dict(), architecture=model.spec.backbone,
        num_outputs=index.num_classes + model.spec.first_label, preprocessing=model.pre.to_dict(),
        weights=model.weights, model_extra={"detector": model.spec.to_dict()}, console=console,
    )
