"""The work of :func:`headstart.select.rank.rank` on a detection dataset.

Per candidate (backbone, input size), without training a detector: the backbone as the detector
would hold it (:class:`headstart.tasks.detection.models.TimmFPN`'s ``features_only`` body, the same
levels, frozen BatchNorm, the ImageNet weights from the store), its images/s at that size, the
box-level features of a sample of the training images (:mod:`headstart.select.box_features`,
cached on disk by :class:`~headstart.select.feature_cache.BoxFeatureCache`), the estimators of
:mod:`headstart.select.estimators` on the boxes' classes plus background, and the stride fit of
:mod:`headstart.select.stride_fit`. The rows are combined and written by ``rank`` as for
classification.
"""

from __future__ import annotations

import math
import time
from typing import Any

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError

__all__ = ["detection_pairs", "run_detection_candidates", "DETECTION_WEIGHTS", "OUT_INDICES"]

OUT_INDICES = (2, 3, 4)  # the levels headstart's detectors take (DetectorSpec's default)
# The combined score of a detection ranking: the classification mix plus the stride fit (see
# BENCHMARKS.md, "Ranking detection backbones", for what was measured with it and without).
DETECTION_WEIGHTS: dict[str, float] = {"logme": 1.0, "linear_probe": 1.0, "knn": 1.0, "stride_fit": 1.0}


def detection_pairs(names: list[str], sizes: list[int] | None, train, device_kind: str) -> list[tuple[str, int]]:
    """(model, input size) pairs: each model at each size, by default at the input size detection
    fit would choose for this data (:func:`headstart.tasks.detection.choices.auto_image_size`)."""
    from headstart.tasks.detection.choices import auto_image_size

    sizes = sizes or [auto_image_size(train, device_kind)]
    return [(n, s) for n in dict.fromkeys(names) for s in sizes]


def _body(name: str, weights):
    """The detector's backbone body for ``name`` with ``weights`` loaded, and its strides."""
    from safetensors.torch import load_file

    from headstart.tasks.detection.models import TimmFPN, load_backbone_weights

    fpn = TimmFPN(name, out_indices=OUT_INDICES, out_channels=8)
    load_backbone_weights(fpn, load_file(str(weights.path)), name)
    return fpn.body.eval(), fpn.strides


def _throughput(body, size: int, dev, batch: int = 8, repeats: int = 2) -> float:
    """Images/s of the backbone body at ``size`` x ``size`` (best of ``repeats`` after a warm-up)."""
    import torch

    x = dev.to_device(torch.randn(batch, 3, size, size))
    best = float("inf")
    with torch.no_grad():
        body(x)
        for _ in range(repeats):
            if dev.is_cuda:
                torch.cuda.synchronize(dev.device)
            t0 = time.perf_counter()
            body(x)
            if dev.is_cuda:
                torch.cuda.synchronize(dev.device)
            best = min(best, time.perf_counter() - t0)
    return batch / max(best, 1e-9)


def _prepare(pairs, dev, allow_download, store_root, skipped, progress):
    from headstart.models.resolve import resolve_weights
    from headstart.select.runner import _hint

    models: dict[str, Any] = {}
    for name in dict.fromkeys(n for n, _ in pairs):
        sizes = [s for n, s in pairs if n == name]
        try:
            weights = resolve_weights(name, allow_download=allow_download, store_root=store_root)
            body, strides = _body(name, weights)
        except (WeightsNotFoundError, WeightsMismatchError) as exc:
            first = str(exc).splitlines()[0]
            skipped += [{"model": name, "image_size": s, "reason": f"{first} Fix: {_hint(name)}."} for s in sizes]
            continue
        except RuntimeError as exc:  # timm: a model without features_only (e.g. some transformers)
            skipped += [
                {"model": name, "image_size": s, "reason": f"no multi-scale features for a detector: {exc}"}
                for s in sizes
            ]
            continue
        body = body.to(dev.device)
        speeds = {s: _throughput(body, s, dev) for s in sizes}
        params = sum(p.numel() for p in body.parameters())
        models[name] = (body, strides, weights, params, speeds)
        progress()
    return models


def _sample_order(train, num_classes: int, seed: int) -> list[int]:
    """A stratified order of the training images by their rarest class (negatives as one more)."""
    from collections import Counter

    from headstart.select.runner import stratified_order

    counts = Counter(lab for s in train for lab, ign in zip(s.labels, s.ignore) if not ign)
    keys = []
    for s in train:
        labs = [lab for lab, ign in zip(s.labels, s.ignore) if not ign]
        keys.append(min(labs, key=lambda lab: (counts[lab], lab)) if labs else num_classes)
    return stratified_order(keys, seed)


def run_detection_candidates(
    index,
    pairs,
    *,
    estimators,
    budget_s,
    t_start,
    max_images,
    batch_size,
    seed,
    dev,
    cache_dir,
    allow_download,
    store_root,
    verbose,
):
    import numpy as np
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from timm.models import get_pretrained_cfg

    from headstart.data.box_dataset import box_preprocessing
    from headstart.data.dataset import ImageCache
    from headstart.select.box_features import BACKGROUND_MAX_OVERLAP, POOL, extract_box_features, image_rois
    from headstart.select.estimators import score_all
    from headstart.select.feature_cache import BoxFeatureCache
    from headstart.select.runner import _DECODE_S, _plan, min_images
    from headstart.select.stride_fit import small_box_share, stride_fit

    skipped: list[dict[str, Any]] = []
    train = index.splits["train"]
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not verbose,
    )
    with progress:
        task_models = progress.add_task("Loading candidates", total=len(dict.fromkeys(n for n, _ in pairs)))
        models = _prepare(pairs, dev, allow_download, store_root, skipped, lambda: progress.advance(task_models))
        progress.remove_task(task_models)
        jobs = [
            {"model": name, "image_size": size, "ips": ips, "per_image": 1.0 / ips + _DECODE_S}
            for name, (_, _, _, _, speeds) in models.items()
            for size, ips in speeds.items()
        ]
        if not jobs:
            return [], skipped, {"n_images": 0}
        elapsed = time.perf_counter() - t_start
        cheapest = min(j["per_image"] for j in jobs)
        jobs, n = _plan(jobs, len(train), index.num_classes, budget_s - elapsed, max_images, skipped)
        if not jobs:
            need = min_images(len(train), index.num_classes) * cheapest + 1.0
            raise ConfigError(
                f"The budget of {budget_s:g}s is too small to rank even one candidate: loading them"
                f" took {elapsed:.0f}s and the cheapest needs about {need:.0f}s more. Pass"
                f" --budget {math.ceil((elapsed + need) * 1.2)}s or more."
            )
        sample = [train[i] for i in _sample_order(train, index.num_classes, seed)[:n]]
        rois = image_rois(sample, index.num_classes, seed)
        cache = BoxFeatureCache(cache_dir)
        images = ImageCache("memory")
        rows = []
        task_c = progress.add_task("Candidates", total=len(jobs))
        task_i = progress.add_task("Images", total=n * len(jobs))
        for job in jobs:
            t0 = time.perf_counter()
            name, size = job["model"], job["image_size"]
            body, strides, weights, params, _ = models[name]
            progress.update(task_c, description=f"{name} @{size}px")
            pcfg = get_pretrained_cfg(name)
            pre = box_preprocessing(
                size,
                getattr(pcfg, "mean", None) or (0.485, 0.456, 0.406),
                getattr(pcfg, "std", None) or (0.229, 0.224, 0.225),
            )

            def compute(body=body, strides=strides, pre=pre):
                f, y, wh = extract_box_features(
                    body,
                    strides,
                    sample,
                    rois,
                    pre,
                    dev,
                    batch_size=batch_size,
                    cache=images,
                    progress=lambda k: progress.advance(task_i, k),
                )
                return {"features": f.float(), "labels": y, "box_sizes": wh.float()}

            group = {
                "model": name,
                "weights_sha256": weights.sha256 or str(weights.path),
                "out_indices": OUT_INDICES,
                "preprocessing": pre.to_dict(),
                "pool": POOL,
                "seed": seed,
                "background_max_overlap": BACKGROUND_MAX_OVERLAP,
                "num_classes": index.num_classes,
            }
            tensors, hit = cache.get_or_compute(group, sample, compute)
            if hit:
                progress.advance(task_i, n)
            feats, labels = tensors["features"].numpy(), tensors["labels"].numpy()
            objects = tensors["box_sizes"].numpy()[labels < index.num_classes]
            torch.manual_seed(seed)
            scores = (
                score_all(feats, labels, estimators, seed=seed)
                if len(np.unique(labels)) >= 2
                else {e: math.nan for e in estimators}
            )
            rows.append(
                {
                    "model": name,
                    "image_size": size,
                    **scores,
                    "stride_fit": stride_fit(objects, strides[0]),
                    "small_boxes": small_box_share(objects, strides[0]),
                    "images_per_s": round(job["ips"], 1),
                    "params_m": round(params / 1e6, 3),
                    "feature_dim": int(feats.shape[1]),
                    "n_images": n,
                    "n_boxes": int(len(objects)),
                    "n_background": int((labels == index.num_classes).sum()),
                    "seconds": round(time.perf_counter() - t0, 2),
                    "cache_hit": hit,
                }
            )
            progress.advance(task_c)
    return rows, skipped, {"n_images": n, "strides": list(strides)}
