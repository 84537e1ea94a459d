"""The work of :func:`headstart.select.rank.rank`: weights, costs, budget, features and scores."""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError

__all__ = ["run_candidates", "min_images", "stratified_order"]

# Measured on the 2-core CPU (session 3: 9 candidates, 200 digits, 32-128 px): each candidate took
# 0.26-1.05 s beyond its forward passes at the measured images/s (all five estimators, loader, first
# decode, cache I/O). Kept about 2x above that, since an over-full budget is worse than a short one.
_OVERHEAD_S = 1.0  # per candidate beyond the forward passes
_DECODE_S = 0.004  # per image and candidate: decode (first time), resize, crop, normalise


def min_images(n_train: int, num_classes: int) -> int:
    """The smallest sample worth scoring: 5 images per class (cross-validation needs >= 2 per
    class and fold), at least 20, at most the whole training split."""
    return min(n_train, max(20, 5 * num_classes))


def stratified_order(labels: Sequence[int], seed: int) -> list[int]:
    """An order of the samples whose every prefix is (close to) stratified: each class is shuffled
    and its i-th image placed at (i + u) / count_c. Smaller budgets take a prefix of the same
    order, so their features are a subset of a larger cached sample."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        where = where[rng.permutation(len(where))]
        keys[where] = (np.arange(len(where)) + rng.random(len(where))) / len(where)
    return [int(i) for i in np.argsort(keys, kind="stable")]


def _hint(name: str) -> str:
    from headstart.models.sources import KNOWN_SOURCES

    if name in KNOWN_SOURCES:
        return f"run `headstart weights fetch {name}` or `headstart weights import FILE --model {name}`"
    return f"run `headstart weights import FILE --model {name}` (or pass --allow-download)"


def _prepare_models(pairs, dev, allow_download, store_root, skipped, progress=None, native_short_side=None):
    """{name: (model, weights, params, {size: images/s})} for candidates whose weights load. A
    candidate without a size gets the one ``fit`` would choose for these images
    (:func:`headstart.data.input_size.input_size_for_data`)."""
    from headstart.data.input_size import input_size_for_data
    from headstart.data.transforms import Preprocessing
    from headstart.models.build import create_model
    from headstart.models.resolve import resolve_weights
    from headstart.select.cost import count_params, measure_throughput

    models: dict[str, Any] = {}
    for name in dict.fromkeys(n for n, _ in pairs):
        sizes = [s for n, s in pairs if n == name]
        try:
            weights = resolve_weights(name, allow_download=allow_download, store_root=store_root)
            model = create_model(name, 1, weights=weights).to(dev.device).eval()
        except (WeightsNotFoundError, WeightsMismatchError) as exc:
            first = str(exc).splitlines()[0]
            skipped += [{"model": name, "image_size": s, "reason": f"{first} Fix: {_hint(name)}."} for s in sizes]
            continue
        speeds = {}
        for size in sizes:
            chosen = size
            if chosen is None:
                chosen = input_size_for_data(Preprocessing.from_model(model).input_size, native_short_side)[0]
            real = Preprocessing.from_model(model, chosen).input_size
            try:
                speeds[size] = (real, measure_throughput(model, real, dev))
            except Exception as exc:  # e.g. a ViT at a size its position embedding does not support
                skipped.append({"model": name, "image_size": real, "reason": f"cannot run at {real}px: {exc}"})
        if speeds:
            models[name] = (model, weights, count_params(model), speeds)
        if progress is not None:
            progress()
    return models


def _plan(jobs, n_train, num_classes, budget_left, max_images, skipped):
    """How many images to score per candidate within the budget; drops the costliest candidates
    (listed as skipped) when not even the minimum sample fits for all."""
    n_min = min_images(n_train, num_classes)
    jobs = sorted(jobs, key=lambda j: j["per_image"])
    while jobs:
        fixed = _OVERHEAD_S * len(jobs)
        per_image = sum(j["per_image"] for j in jobs)
        n = int((budget_left - fixed) / per_image) if budget_left > fixed else 0
        if n >= n_min:
            break
        dropped = jobs.pop()
        skipped.append({"model": dropped["model"], "image_size": dropped["image_size"],
                        "reason": "over the budget (raise --budget to include it)"})
    if not jobs:
        return [], 0
    n = min(n, n_train, max_images)
    if n > 100 and n < n_train:
        n -= n % 25  # a few fixed sample sizes: a rerun reuses the cached features
    return jobs, n


def run_candidates(index, pairs, *, estimators, budget_s, t_start, max_images, batch_size, seed, dev, cache_dir,
                   allow_download, store_root, verbose):
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from headstart.data.dataset import ImageCache, ImageDataset, create_loader, default_num_workers
    from headstart.data.transforms import Preprocessing, build_eval_transform
    from headstart.select.estimators import score_all
    from headstart.select.feature_cache import FeatureCache
    from headstart.tasks.classification.features import extract_features

    skipped: list[dict[str, Any]] = []
    train = index.splits["train"]
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        transient=True, disable=not verbose)
    with progress:
        n_models = len(dict.fromkeys(n for n, _ in pairs))
        task_models = progress.add_task("Loading candidates", total=n_models)
        models = _prepare_models(pairs, dev, allow_download, store_root, skipped,
                                 lambda: progress.advance(task_models), getattr(index, "median_short_side", None))
        progress.remove_task(task_models)
        jobs = [{"model": name, "image_size": real, "ips": ips, "per_image": 1.0 / ips + _DECODE_S}
                for name, (_, _, _, speeds) in models.items() for real, ips in speeds.values()]
        elapsed = time.perf_counter() - t_start
        if not jobs:
            return [], skipped, {"n_images": 0}
        cheapest = min(j["per_image"] for j in jobs)
        jobs, n = _plan(jobs, len(train), index.num_classes, budget_s - elapsed, max_images, skipped)
        if not jobs:
            need = elapsed + _OVERHEAD_S + min_images(len(train), index.num_classes) * cheapest
            raise ConfigError(
                f"The budget of {budget_s:g}s is too small to rank even one candidate: loading the candidates"
                f" took {elapsed:.0f}s and the cheapest needs about {need - elapsed:.0f}s more for"
                f" {min_images(len(train), index.num_classes)} images. Pass --budget {math.ceil(need * 1.2)}s"
                " or more."
            )
        order = stratified_order([s.label for s in train], seed)[:n]
        sample = [train[i] for i in order]
        feature_cache = FeatureCache(cache_dir)
        image_cache = ImageCache("memory")
        rows = []
        task_c = progress.add_task("Candidates", total=len(jobs))
        task_i = progress.add_task("Images", total=n * len(jobs))
        for job in jobs:
            t0 = time.perf_counter()
            model, weights, params, _ = models[job["model"]]
            progress.update(task_c, description=f"{job['model']} @{job['image_size']}px")
            pre = Preprocessing.from_model(model, job["image_size"])
            ds = ImageDataset(sample, pre, build_eval_transform(pre), image_cache)

            def compute(ds=ds, model=model):
                # one pass per candidate: on CUDA, workers decode in parallel (on the CPU the cores
                # are the model's, so no workers; see default_num_workers)
                loader = create_loader(ds, batch_size, shuffle=False, seed=seed,
                                       num_workers=default_num_workers(dev.device), pin_memory=dev.is_cuda)
                return extract_features(model, loader, dev, progress=lambda k: progress.advance(task_i, k))

            if weights.sha256:
                feats, labels, hit = feature_cache.get_or_compute(job["model"], weights.sha256, pre.to_dict(),
                                                                 sample, compute)
            else:
                (feats, labels), hit = compute(), False
            if hit:
                progress.advance(task_i, n)
            torch.manual_seed(seed)
            scores = score_all(feats.numpy(), labels.numpy(), estimators, seed=seed)
            rows.append({"model": job["model"], "image_size": job["image_size"], **scores,
                         "images_per_s": round(job["ips"], 1), "params_m": round(params / 1e6, 3),
                         "feature_dim": int(feats.shape[1]), "n_images": n,
                         "seconds": round(time.perf_counter() - t0, 2), "cache_hit": hit})
            progress.advance(task_c)
    return rows, skipped, {"n_images": n}
