"""A classification fit, as named steps: data -> model -> resolve every auto -> loaders -> train ->
evaluate -> save. Each step is a function of what the earlier ones produced, so a reader can follow
the run top to bottom in :func:`run`, and ``tune`` reuses the "resolve every auto" step
(:func:`headstart.tasks.classification.choices.resolve_choices`).

On several processes every rank runs these steps: rank 0 alone reads and checks the data (the
others get its index), resolves ``model: auto`` and writes the run folder; every rank trains on its
share of each batch and evaluates its share of each split, gathered (docs/architecture.md)."""

from __future__ import annotations

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
    name: str
    weights: Any
    pre: Any
    num_outputs: int


def run(cfg: FitConfig, run: RunFolder, *, console, verbose: bool = True, callbacks: Sequence[Any] = ()) -> FitResult:
    import torch

    from headstart.engine import distributed
    from headstart.engine.device import resolve_device

    t_start = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    index = distributed.on_main(lambda: load_data(cfg, run, console))
    dev = resolve_device(cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    cfg, model = build_model(cfg, index, dev, run, console, verbose)
    dev = dev.prepare(model.module)  # channels_last where it pays (on the CPU too)
    cfg = resolve_autos(cfg, index, model, dev, run, console)
    loaders = make_loaders(cfg, index, model, dev, run, verbose, console)
    try:
        trainer, state = train(cfg, index, model, dev, run, loaders, console, verbose, callbacks)
        metrics, probs = evaluate(cfg, index, trainer, dev, loaders, state, t_start)
    finally:
        loaders.close()
    if not distributed.is_main():  # rank 0 writes the run folder; the others only trained
        return FitResult(run.path, cfg, state.history, metrics, list(index.classes), None, task="classify")
    return save(cfg, index, model, trainer, run, metrics, probs, state, console)


# ---------------------------------------------------------------------------------------------- steps
def load_data(cfg: FitConfig, run: RunFolder, console):
    """Discovered, validated and split before anything heavy happens; a resume reads split.json."""
    from headstart.data.index import load_dataset
    from headstart.data.split import save_split

    index = load_dataset(cfg.data, seed=cfg.train.seed, split_file=run.split_path if cfg.resume else None)
    console.print(index.summary().format())
    if not cfg.resume:
        save_split(index, run.split_path)
    return index


def build_model(cfg: FitConfig, index, dev, run: RunFolder, console, verbose: bool) -> tuple[FitConfig, _Model]:
    """The model and its weights: fails fast, before any decoding work, when weights are missing."""
    from headstart.data.transforms import Preprocessing
    from headstart.engine.distributed import on_main
    from headstart.models.build import create_model
    from headstart.models.resolve import resolve_weights
    from headstart.models.zoo import check_model_name
    from headstart.tasks.classification.loss import num_outputs

    model_name = cfg.model.name
    if model_name == "auto":
        # rank the candidates (or reuse `headstart rank`'s table); falls back to choose_model
        from headstart.select.auto import choose_by_rank

        model_name, auto_size, reason = on_main(lambda: choose_by_rank(cfg, index, dev, run.path, verbose))
        if auto_size is not None and cfg.model.image_size is None:
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"image_size": auto_size})})
        console.print(f"model auto: {reason}")
    model_name = check_model_name(model_name)
    weights = None
    if cfg.model.pretrained:
        weights = resolve_weights(model_name, explicit=cfg.model.weights, allow_download=cfg.model.allow_download)
    n_out = num_outputs(index.num_classes)
    module = create_model(model_name, n_out, weights=weights, drop_rate=cfg.model.drop_rate)
    image_size = cfg.model.image_size
    if image_size is None:
        # no size given: from the images' native resolution (measured by the data scan), so that
        # 28 px images are not upsampled to 224 px (headstart.data.input_size)
        from headstart.data.input_size import input_size_for_data

        pretrained = Preprocessing.from_model(module).input_size
        image_size, reason = input_size_for_data(pretrained, index.median_short_side)
        console.print(f"input size auto: {image_size}px, {reason}")
    pre = Preprocessing.from_model(module, image_size)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": model_name, "image_size": pre.input_size})})
    return cfg, _Model(module, model_name, weights, pre, n_out)


def resolve_autos(cfg: FitConfig, index, model: _Model, dev, run: RunFolder, console) -> FitConfig:
    """Every remaining 'auto' decided and written to config.yaml, so the file says what ran."""
    from headstart.engine.distributed import is_main
    from headstart.tasks.classification.choices import resolve_choices

    cfg = resolve_choices(cfg, len(index.splits["train"]), device=dev.device)
    if not cfg.resume and is_main():
        run.write_config(cfg.to_yaml())
    console.print(
        f"model {model.name} ({_source_text(model.weights)}), input {model.pre.input_size}px {model.pre.interpolation}, "
        f"strategy {cfg.train.strategy}, augment {cfg.augment.preset}, lr {cfg.train.lr:.2e}, device {dev.device}"
    )
    return cfg


@dataclass
class _Loaders:
    make: Any
    close: Any
    eval_split: str


def make_loaders(cfg: FitConfig, index, model: _Model, dev, run: RunFolder, verbose: bool,
                 console=None) -> _Loaders:
    """One image cache shared by every split, warmed on a thread pool before the first epoch (and
    before worker processes would each fill a copy of a memory cache)."""
    from headstart.data.dataset import ImageCache
    from headstart.tasks.classification.loaders import make_loader_factory
    from headstart.workflows.distributed_steps import warm_cache

    eval_split = "test" if index.splits.get("test") else "val"
    cache_dir = cfg.data.cache_dir or run.cache_dir
    cache = ImageCache(cfg.data.cache, cache_dir if cfg.data.cache == "disk" else None, dataset_root=index.root)
    make_loader, datasets, close = make_loader_factory(index, model.pre, cfg, cfg.augment.preset, cache, dev,
                                                      eval_split=eval_split)
    warm_cache(cfg, list(datasets.values()), verbose, console)
    return _Loaders(make_loader, close, eval_split)


def train(cfg: FitConfig, index, model: _Model, dev, run: RunFolder, loaders: _Loaders, console, verbose: bool,
          callbacks: Sequence[Any]):
    from headstart.engine.callbacks import EarlyStopping, ProgressBar
    from headstart.engine.trainer import Trainer
    from headstart.select.auto import probe_feature_cache
    from headstart.tasks.classification.loss import balanced_class_weights
    from headstart.tasks.classification.strategies import plan_stages
    from headstart.tasks.classification.task import ClassificationTask

    class_weights = None
    if cfg.train.class_weights == "balanced":
        class_weights = balanced_class_weights([s.label for s in index.splits["train"]], index.num_classes)
    task = ClassificationTask(
        model.module, num_classes=index.num_classes, make_loader=loaders.make, dev=dev, cfg=cfg.train,
        class_weights=class_weights, feature_cache=probe_feature_cache(model.name, model.weights, model.pre, index),
    )
    trainer = Trainer(
        task, plan_stages(cfg.train, cfg.train.strategy), cfg.train, dev=dev, task_name=task.name,
        callbacks=[EarlyStopping(cfg.train.monitor, cfg.train.patience), ProgressBar(console, enabled=verbose),
                   *callbacks],
        checkpoint_dir=run.checkpoint_dir,
    )
    state = trainer.fit(resume=cfg.resume)
    if trainer.world.is_main:
        run.write_history(state.history)
    return trainer, state


def evaluate(cfg: FitConfig, index, trainer, dev, loaders: _Loaders, state, t_start: float):
    """The test split (val when there is none), with the best weights."""
    from headstart.tasks.classification.loss import logits_to_probs
    from headstart.tasks.classification.metrics import classification_metrics
    from headstart.tasks.classification.task import predict_logits

    logits, labels = predict_logits(trainer.model, loaders.make(loaders.eval_split, seed=0), dev)
    probs = logits_to_probs(logits, index.num_classes).numpy()
    metrics = classification_metrics(labels.numpy(), probs, index.classes, top_k=cfg.train.top_k)
    metrics.update(
        {"task": "classify", "split": loaders.eval_split, "best_epoch": state.best_epoch,
         "monitor": cfg.train.monitor, "best_monitor_value": state.best_value, "epochs_run": len(state.history),
         "fit_seconds": round(time.perf_counter() - t_start, 2)}
    )
    return metrics, probs


def save(cfg: FitConfig, index, model: _Model, trainer, run: RunFolder, metrics, probs, state, console) -> FitResult:
    import torch

    from headstart._version import __version__
    from headstart.models.build import architecture_changes
    from headstart.predict import Predictor
    from headstart.reporting.fit_hooks import report_after_fit, save_predictions
    from headstart.tasks.classification.plots import plot_confusion_matrix, plot_learning_curves
    from headstart.workflows.provenance import provenance

    eval_split = metrics["split"]
    run.write_metrics(metrics)
    save_predictions(run.path / "predictions.csv", index.splits[eval_split], probs, index.classes)
    plot_learning_curves(state.history, run.plots_dir / "learning_curves.png")
    plot_confusion_matrix(metrics["confusion_matrix"], index.classes, run.plots_dir / "confusion_matrix.png")

    trainer.model.to("cpu").to(memory_format=torch.contiguous_format)
    run.save_model(
        trainer.model.state_dict(),
        task="classify",
        architecture=model.name,
        classes=index.classes,
        num_outputs=model.num_outputs,
        preprocessing=model.pre.to_dict(),
        provenance=provenance(__version__, cfg, index, model.weights),
        extra=architecture_changes(model.module),  # e.g. Keras ResNet50's dilations
    )
    console.print(
        f"{eval_split}: accuracy {metrics['accuracy']:.4f}, balanced accuracy {metrics['balanced_accuracy']:.4f}, "
        f"macro F1 {metrics['macro_f1']:.4f} on {metrics['n_test']} images. Run folder: {run.path}"
    )
    predictor = Predictor(trainer.model, index.classes, model.pre)
    report_after_fit(run.path, console)
    return FitResult(run.path, cfg, state.history, metrics, list(index.classes), predictor, task="classify")


# ---------------------------------------------------------------------------------------------- helpers
def _source_text(weights) -> str:
    if weights is None:
        return "random init"
    return f"weights from {weights.source}" + (f" {weights.sha256[:12]}" if weights.sha256 else "")
