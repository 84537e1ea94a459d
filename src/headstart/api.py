"""``headstart.fit`` and ``headstart.load``: the Python API, and what the CLI's ``fit`` calls.

A fit goes: config -> dataset (discover, validate, split) -> model (name, weights) -> preprocessing
from the model's pretrained_cfg -> cached datasets and loaders -> strategy stages -> trainer ->
test metrics -> run folder.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from headstart.config import FitConfig, build_config, load_yaml
from headstart.errors import ConfigError
from headstart.run_folder import RunFolder, default_run_dir

__all__ = ["FitResult", "fit", "load"]


@dataclass
class FitResult:
    """What a run produced. ``predict`` runs the trained model with its own preprocessing."""

    run_dir: Path
    config: FitConfig
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    classes: list[str]
    predictor: Any = field(repr=False, default=None)

    def predict(self, inputs: str | Path | Iterable[str | Path], *, top_k: int = 1, batch_size: int = 32):
        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        if self.predictor is None:
            from headstart.predict import Predictor

            self.predictor = Predictor.from_run(self.run_dir)
        return self.predictor.predict(inputs, top_k=top_k, batch_size=batch_size)


def load(run_dir: str | Path, device: str = "cpu") -> FitResult:
    """Open a finished run folder (weights, labels, preprocessing, history, metrics); its
    ``predict`` runs on ``device`` ("cpu", "cuda", "cuda:1", ...)."""
    from headstart.predict import Predictor

    run = RunFolder.open(run_dir)
    cfg = build_config(config=load_yaml(run.config_path))
    metrics = run.read_json("metrics.json") if run.metrics_path.is_file() else {}
    predictor = Predictor.from_run(run.path, device=device)
    return FitResult(run.path, cfg, run.read_history(), metrics, predictor.classes, predictor)


def _console(verbose: bool):
    from rich.console import Console

    return Console(stderr=True, quiet=not verbose, highlight=False)


def _resolve_config(data, config, overrides, kwargs) -> tuple[FitConfig, RunFolder]:
    resume = bool(kwargs.get("resume"))
    if resume:
        out = kwargs.get("out")
        if out is None and isinstance(config, FitConfig):
            out = config.out
        if out is None:
            raise ConfigError("The 'resume' parameter needs the run folder to continue: pass --out RUN_DIR.")
        run = RunFolder.create(out, resume=True)
        cfg = build_config(config=load_yaml(run.config_path))
        return cfg.model_copy(update={"resume": True}), run
    cfg = build_config(data, config=config, overrides=overrides, **kwargs)
    if cfg.data.path is None:
        raise ConfigError("The 'data.path' parameter is required: pass a folder of images or a CSV file.")
    out = cfg.out if cfg.out is not None else default_run_dir(cfg.data.path)
    run = RunFolder.create(out)
    return cfg.model_copy(update={"out": run.path}), run


def fit(
    data: str | Path | None = None,
    *,
    config: str | Path | Mapping[str, Any] | FitConfig | None = None,
    overrides: Sequence[str] = (),
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    tune: str | float | None = None,
    **kwargs: Any,
) -> FitResult:
    """Fine-tune a pretrained model on a folder of images and evaluate it.

    ``kwargs`` are the flat parameters of :data:`headstart.config.FLAT_KEYS` (``model``,
    ``strategy``, ``epochs``, ``lr``, ``augment``, ``image_size``, ``out``, ...), the same as the CLI
    flags. Returns a :class:`FitResult`; everything is also written to the run folder.

    ``callbacks`` (:class:`headstart.train.callbacks.Callback`) are appended to the trainer's own.
    ``tune`` (a budget such as ``'15m'``) first runs :func:`headstart.tuning.tune` for that long in
    ``<out>/tune``, then puts the model of the best config in ``<out>``.
    """
    if tune is not None:
        from headstart.tuning.study import fit_with_tuning

        return fit_with_tuning(data, tune, config=config, overrides=overrides, verbose=verbose, **kwargs)
    import torch

    from headstart import __version__
    from headstart.data.dataset import ImageCache, default_num_workers, warm
    from headstart.data.index import load_dataset
    from headstart.data.split import save_split
    from headstart.data.transforms import Preprocessing, resolve_augment_preset
    from headstart.evaluate.metrics import classification_metrics
    from headstart.evaluate.plots import plot_confusion_matrix, plot_learning_curves
    from headstart.models.build import create_model
    from headstart.models.resolve import resolve_weights
    from headstart.models.zoo import check_model_name
    from headstart.predict import Predictor
    from headstart.select.auto import probe_feature_cache
    from headstart.train.callbacks import EarlyStopping, ProgressBar, StageFreezer
    from headstart.train.device import resolve_device
    from headstart.train.loop import Trainer, predict_logits
    from headstart.train.loss import balanced_class_weights, logits_to_probs, num_outputs
    from headstart.train.pipeline import make_loader_factory
    from headstart.train.strategies import default_lr, plan_stages, resolve_strategy

    console = _console(verbose)
    cfg, run = _resolve_config(data, config, overrides, kwargs)
    t_start = time.perf_counter()
    torch.manual_seed(cfg.train.seed)

    # Data: discovered, validated and split before anything heavy happens.
    index = load_dataset(cfg.data, seed=cfg.train.seed, split_file=run.split_path if cfg.resume else None)
    console.print(index.summary().format())
    if not cfg.resume:
        save_split(index, run.split_path)
    n_train = len(index.splits["train"])
    eval_split = "test" if index.splits.get("test") else "val"

    # Model and weights: fail fast, before any decoding work, when weights are missing.
    dev = resolve_device(cfg.train.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)
    model_name = cfg.model.name
    if model_name == "auto":
        # rank the candidates (or reuse `headstart rank`'s table); falls back to choose_model
        from headstart.select.auto import choose_by_rank

        model_name, auto_size, reason = choose_by_rank(cfg, index, dev, run.path, verbose)
        if auto_size is not None and cfg.model.image_size is None:
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"image_size": auto_size})})
        console.print(f"model auto: {reason}")
    model_name = check_model_name(model_name)
    weights = None
    if cfg.model.pretrained:
        weights = resolve_weights(model_name, explicit=cfg.model.weights, allow_download=cfg.model.allow_download)
    n_out = num_outputs(index.num_classes)
    model = create_model(model_name, n_out, weights=weights, drop_rate=cfg.model.drop_rate)
    pre = Preprocessing.from_model(model, cfg.model.image_size)

    # Resolve every 'auto' so that config.yaml says what really ran.
    strategy = resolve_strategy(cfg.train.strategy, n_train, pretrained=cfg.model.pretrained)
    preset = resolve_augment_preset(cfg.augment.preset, n_train)
    lr = cfg.train.lr if cfg.train.lr is not None else default_lr(strategy, cfg.train.batch_size, cfg.train.optimizer)
    num_workers = cfg.data.num_workers if cfg.data.num_workers is not None else default_num_workers(dev.device)
    cfg = cfg.model_copy(
        update={
            "model": cfg.model.model_copy(update={"name": model_name, "image_size": pre.input_size}),
            "augment": cfg.augment.model_copy(update={"preset": preset}),
            "train": cfg.train.model_copy(update={"strategy": strategy, "lr": lr}),
            "data": cfg.data.model_copy(update={"num_workers": num_workers}),
        }
    )
    if not cfg.resume:
        run.write_config(cfg.to_yaml())
    console.print(
        f"model {model_name} ({_source_text(weights)}), input {pre.input_size}px {pre.interpolation}, "
        f"strategy {strategy}, augment {preset}, lr {lr:.2e}, device {dev.device}"
    )

    cache_dir = cfg.data.cache_dir or run.cache_dir
    cache = ImageCache(cfg.data.cache, cache_dir if cfg.data.cache == "disk" else None, dataset_root=index.root)
    make_loader, datasets, close_loaders = make_loader_factory(index, pre, cfg, preset, cache, dev, eval_split=eval_split)
    if cfg.data.cache != "none":
        # decode every image once, on a thread pool, before the first epoch (and before worker
        # processes would each fill a copy of a memory cache)
        warm(list(datasets.values()), progress=verbose)
    class_weights = None
    if cfg.train.class_weights == "balanced":
        class_weights = balanced_class_weights([s.label for s in index.splits["train"]], index.num_classes)

    trainer = Trainer(
        model,
        plan_stages(cfg.train, strategy),
        cfg.train,
        num_classes=index.num_classes,
        dev=dev,
        make_loader=make_loader,
        class_weights=class_weights,
        callbacks=[StageFreezer(cfg.train.freeze_bn), EarlyStopping(cfg.train.monitor, cfg.train.patience), ProgressBar(console, enabled=verbose), *callbacks],
        checkpoint_dir=run.checkpoint_dir,
        feature_cache=probe_feature_cache(model_name, weights, pre, index),
    )
    try:
        state = trainer.fit(resume=cfg.resume)
        run.write_history(state.history)
        # Evaluation on the test split (val when there is none), with the best weights.
        logits, labels = predict_logits(trainer.model, make_loader(eval_split, seed=0), dev)
    finally:
        close_loaders()
    probs = logits_to_probs(logits, index.num_classes).numpy()
    metrics = classification_metrics(labels.numpy(), probs, index.classes, top_k=cfg.train.top_k)
    metrics.update(
        {"split": eval_split, "best_epoch": state.best_epoch, "monitor": cfg.train.monitor,
         "best_monitor_value": state.best_value, "epochs_run": len(state.history),
         "fit_seconds": round(time.perf_counter() - t_start, 2)}
    )
    run.write_metrics(metrics)
    from headstart.reporting.fit_hooks import report_after_fit, save_predictions

    save_predictions(run.path / "predictions.csv", index.splits[eval_split], probs, index.classes)
    plot_learning_curves(state.history, run.plots_dir / "learning_curves.png")
    plot_confusion_matrix(metrics["confusion_matrix"], index.classes, run.plots_dir / "confusion_matrix.png")

    trainer.model.to("cpu").to(memory_format=torch.contiguous_format)
    run.save_model(
        trainer.model.state_dict(),
        architecture=model_name,
        classes=index.classes,
        num_outputs=n_out,
        preprocessing=pre.to_dict(),
        provenance=_provenance(__version__, cfg, index, weights),
    )
    console.print(
        f"{eval_split}: accuracy {metrics['accuracy']:.4f}, balanced accuracy {metrics['balanced_accuracy']:.4f}, "
        f"macro F1 {metrics['macro_f1']:.4f} on {metrics['n_test']} images. Run folder: {run.path}"
    )
    predictor = Predictor(trainer.model, index.classes, pre)
    report_after_fit(run.path, console)
    return FitResult(run.path, cfg, state.history, metrics, list(index.classes), predictor)


def _source_text(weights) -> str:
    if weights is None:
        return "random init"
    return f"weights from {weights.source}" + (f" {weights.sha256[:12]}" if weights.sha256 else "")


def _provenance(version: str, cfg: FitConfig, index, weights) -> dict[str, Any]:
    import timm
    import torch
    import torchvision

    return {
        "headstart_version": version,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "timm_version": timm.__version__,
        "python_version": platform.python_version(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.train.seed,
        "dataset": {"root": str(index.root), "layout": index.layout, "fingerprint": index.fingerprint(),
                    "sizes": {k: len(v) for k, v in index.splits.items()}},
        "weights": None if weights is None else {
            "source": weights.source, "path": str(weights.path) if weights.path else None, "sha256": weights.sha256,
        },
    }
