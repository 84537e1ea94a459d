"""``headstart.rank``: score (model, input size) candidates on the user's data before fine-tuning.

For each candidate: build the model with its offline weights, measure its images/s, extract
penultimate features of a stratified sample of the training split (size chosen by the budget) with
the model's own preprocessing -- through the on-disk :class:`FeatureCache` -- and score them with
the estimators of :mod:`headstart.select.estimators`; then combine (:mod:`headstart.select.combine`).
On a detection dataset the features are RoI-pooled inside the training boxes and a stride fit is
added (:mod:`headstart.select.rank_detection`); the table, files and combination are the same.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

from headstart._duration import parse_duration
from headstart.errors import ConfigError, DataError
from headstart.run_folder import default_run_dir
from headstart.select.report import RankTable
from headstart.select.runner import stratified_order  # re-exported: it lives with its user, the runner

__all__ = ["rank", "RankTable", "parse_budget", "stratified_order", "default_rank_dir", "default_max_images"]

DEFAULT_ESTIMATORS = ("logme", "hscore", "nleep", "linear_probe", "knn")


def parse_budget(value: Any) -> float:
    """Seconds from ``90``, ``'90s'``, ``'10m'``, ``'1h'``, ``'1h30m'``: the parser of ``tune --timeout``."""
    seconds = parse_duration(value, param="budget")
    if seconds is None:
        raise ConfigError("The 'budget' parameter must be a duration like '90s', '20m', '1h' or '1h30m'"
                          " (or a number of seconds). Got None.")
    return seconds


def default_rank_dir(data_path: str | Path) -> Path:
    """``runs/<dataset name>-rank``: where ``headstart rank`` writes by default and where
    ``fit --model auto`` looks for a ranking to reuse (so the same folder every time)."""
    return default_run_dir(data_path, suffix="-rank", unique=False)


def default_max_images(num_classes: int) -> int:
    """Training images scored per candidate unless told: 10 a class, at least 200, at most 1000.
    LogME and the probes are stable from about 10 images a class, and at 200 images rank cost
    4-5 % of fine-tuning the candidates in ``benchmarks/rank_quality.py`` (BENCHMARKS.md)."""
    return int(min(1000, max(200, 10 * num_classes)))


def _parse_list(name: str, value, convert) -> list | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v != ""]
    if not items:
        raise ConfigError(f"The '{name}' parameter must name at least one value. Got {value!r}.")
    return [convert(v) for v in items]


def _image_size(v) -> int:
    from headstart.config import parse_scalar

    x = parse_scalar(v) if isinstance(v, str) else v
    if isinstance(x, bool) or not isinstance(x, int) or not 16 <= x <= 1024:
        raise ConfigError(f"The 'image_sizes' parameter must hold ints in [16, 1024]. Got {v!r}.")
    return x


def _expand(candidates, image_sizes, device_kind: str) -> list[tuple[str, int | None]]:
    from headstart.models.zoo import candidates as zoo_candidates
    from headstart.models.zoo import check_model_name

    names = _parse_list("candidates", candidates, check_model_name) or [c.name for c in zoo_candidates(device_kind)]
    sizes = _parse_list("image_sizes", image_sizes, _image_size)
    pairs = [(n, s) for n in dict.fromkeys(names) for s in (sizes or [None])]
    return pairs


def _load_index(data, seed: int):
    """A classification :class:`DatasetIndex` or a :class:`DetectionIndex`, from the layout."""
    from headstart.config import DataConfig
    from headstart.data.detection import DetectionIndex, detect_layout, load_detection_dataset
    from headstart.data.index import DatasetIndex, load_dataset

    if isinstance(data, (DatasetIndex, DetectionIndex)):
        return data
    if data is None:
        raise ConfigError("The 'data' parameter is required: pass a folder of images or a CSV file.")
    if Path(data).exists() and detect_layout(data) is not None:
        return load_detection_dataset(data, seed=seed)
    return load_dataset(DataConfig(path=Path(data)), seed=seed)


def _top1(name: str) -> float | None:
    from headstart.models.zoo import CPU_CANDIDATES, GPU_CANDIDATES

    return next((c.top1 for c in CPU_CANDIDATES + GPU_CANDIDATES if c.name == name), None)


def _skip(name, size, reason) -> dict[str, Any]:
    return {"model": name, "image_size": size, "reason": reason}


def rank(
    data,
    *,
    candidates: str | Sequence[str] | None = None,
    image_sizes: str | Sequence[int] | None = None,
    budget: str | float = "10m",
    out: str | Path | None = None,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    weights: dict[str, float] | None = None,
    max_images: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    allow_download: bool = False,
    store_root: str | Path | None = None,
    verbose: bool = True,
) -> RankTable:
    """Rank pretrained (model, input size) candidates for ``data`` before fine-tuning.

    ``candidates``: timm names (list or comma-separated; default: the curated list for the
    device); ``image_sizes``: input sizes to try for each (default: the size
    ``fit`` would choose for these images, :func:`headstart.data.input_size.input_size_for_data`); ``budget``:
    wall-time budget (``90s``, ``10m``, ``1h30m``) that sets how many training images are used, at most
    ``max_images`` (default: :func:`default_max_images`, 10 a class, 200 to 1000 -- the sample
    that kept rank under 5 % of the cost of fine-tuning in ``benchmarks/rank_quality.py``).
    Returns a :class:`RankTable` (best first) and writes ``rank.json``,
    ``rank.csv`` and ``rank.png`` to ``out`` (default ``runs/<dataset>-rank``).
    """
    t_start = time.perf_counter()
    from headstart._validation import check_number
    from headstart.select.estimators import ESTIMATORS

    seconds = parse_budget(budget)
    if max_images is not None:
        max_images = check_number("max_images", max_images, kind=int, low=2, closed="left")
    batch_size = check_number("batch_size", batch_size, kind=int, low=1, closed="left")
    estimators = _parse_list("estimators", estimators, str)
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        from headstart._validation import did_you_mean

        raise ConfigError(f"Unknown estimator {unknown[0]!r}.{did_you_mean(unknown[0], ESTIMATORS)}"
                          f" Choose from {', '.join(ESTIMATORS)}.")
    from headstart.engine.device import resolve_device

    dev = resolve_device(device, amp=True, channels_last=True)
    index = _load_index(data, seed)
    train = index.splits["train"]
    from headstart.data.detection import DetectionIndex

    if isinstance(index, DetectionIndex):
        return _rank_detection(index, data, candidates, image_sizes, dev, t_start=t_start, seconds=seconds,
                               out=out, estimators=estimators, weights=weights, max_images=max_images,
                               batch_size=batch_size, seed=seed, cache_dir=cache_dir, allow_download=allow_download,
                               store_root=store_root, verbose=verbose)
    pairs = _expand(candidates, image_sizes, dev.device.type)
    if index.num_classes < 2 or len({s.label for s in train}) < 2:
        raise DataError(
            f"Ranking needs at least 2 classes; the dataset {str(index.root)!r} has"
            f" {len({s.label for s in train})} class(es) in its training split ({', '.join(index.classes)})."
            " Add a folder of images per class."
        )
    from headstart.select.runner import run_candidates

    if max_images is None:
        max_images = default_max_images(index.num_classes)

    rows, skipped, meta = run_candidates(
        index, pairs, estimators=estimators, budget_s=seconds, t_start=t_start, max_images=max_images,
        batch_size=batch_size, seed=seed, dev=dev, cache_dir=cache_dir, allow_download=allow_download,
        store_root=store_root, verbose=verbose,
    )
    return _finish(rows, skipped, meta, index, data, out=out, estimators=estimators, weights=weights, seed=seed,
                   seconds=seconds, dev=dev, t_start=t_start, verbose=verbose)


def _rank_detection(index, data, candidates, image_sizes, dev, *, t_start, seconds, out, estimators, weights,
                    max_images, batch_size, seed, cache_dir, allow_download, store_root, verbose) -> RankTable:
    from headstart.models.zoo import candidates as zoo_candidates
    from headstart.models.zoo import check_model_name
    from headstart.select.rank_detection import DETECTION_WEIGHTS, detection_pairs, run_detection_candidates

    train = index.splits["train"]
    if not any(not ign for s in train for ign in s.ignore):
        raise DataError(f"Ranking detection backbones needs boxes; the training split of {str(index.root)!r} has"
                        " none. Annotate some objects first (see `headstart doctor DATA`).")
    names = _parse_list("candidates", candidates, check_model_name) or [c.name for c in zoo_candidates(dev.device.type)]
    pairs = detection_pairs(names, _parse_list("image_sizes", image_sizes, _image_size), train, dev.device.type)
    if max_images is None:
        max_images = default_max_images(index.num_classes)
    rows, skipped, meta = run_detection_candidates(
        index, pairs, estimators=estimators, budget_s=seconds, t_start=t_start, max_images=max_images,
        batch_size=batch_size, seed=seed, dev=dev, cache_dir=cache_dir, allow_download=allow_download,
        store_root=store_root, verbose=verbose,
    )
    meta["task"] = "detect"
    return _finish(rows, skipped, meta, index, data, out=out, estimators=estimators,
                   weights=DETECTION_WEIGHTS if weights is None else weights, seed=seed, seconds=seconds, dev=dev,
                   t_start=t_start, verbose=verbose, detection=True)


def _finish(rows, skipped, meta, index, data, *, out, estimators, weights, seed, seconds, dev, t_start, verbose,
            detection: bool = False) -> RankTable:
    """Combine, sort, write rank.json / rank.csv / rank.png and print the table."""
    from headstart.select.combine import combine_scores, relative_accuracy

    train = index.splits["train"]
    if rows:
        extra = ("stride_fit",) if detection else ()
        combined = combine_scores([{e: r[e] for e in (*estimators, *extra)} for r in rows], weights)
        # the probe's accuracy predicts classification accuracy; for boxes it would mislead
        rel = relative_accuracy([r.get("linear_probe", math.nan) for r in rows]) \
            if "linear_probe" in estimators and not detection else [math.nan] * len(rows)
        for r, c, a in zip(rows, combined, rel):
            r["combined"], r["predicted_relative_accuracy"] = c, (a if math.isfinite(a) else None)
            r["imagenet_top1"] = _top1(r["model"])
        # ties (and NaN) broken by name and size, so the order is deterministic
        rows.sort(key=lambda r: (-(r["combined"] if math.isfinite(r["combined"]) else -1e9), r["model"], r["image_size"]))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
        rows = [{c: r.get(c) for c in _ROW_ORDER if c in r} for r in rows]
    meta.update({
        "dataset": {"root": str(index.root), "fingerprint": index.fingerprint(), "classes": list(index.classes),
                    "n_train": len(train)},
        "seed": seed, "estimators": list(estimators), "weights": dict(weights) if weights else None,
        "budget_s": seconds, "device": str(dev.device), "wall_s": round(time.perf_counter() - t_start, 2),
    })
    table = RankTable(rows, skipped, meta)
    out_dir = Path(out) if out is not None else (default_rank_dir(index.root) if not isinstance(data, (str, Path))
                                                   else default_rank_dir(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_json(out_dir / "rank.json")
    table.to_csv(out_dir / "rank.csv")
    if rows:
        table.plot(out_dir / "rank.png")
    table.meta["out"] = str(out_dir)
    if verbose:
        from rich.console import Console

        console = Console(stderr=True, highlight=False)
        width = console.width if console.is_terminal else None
        if width is None:  # a log or a pipe: print every column at full width
            console = Console(stderr=True, highlight=False, width=400)
        console.print(table.rich_table(width=width))
        for s in skipped:
            size = f" @{s['image_size']}px" if s.get("image_size") else ""
            console.print(f"[yellow]skipped[/] {s['model']}{size}: {s['reason']}")
        best, fast = table.best, table.best_per_second
        if best and detection:
            console.print(f"best: {best['model']} @{best['image_size']}px. Written to {out_dir}/rank.json, rank.csv,"
                          f" rank.png in {meta['wall_s']:.0f}s.")
        elif best and fast:
            console.print(f"best accuracy: {best['model']} @{best['image_size']}px; best accuracy per second:"
                          f" {fast['model']} @{fast['image_size']}px. Written to {out_dir}/rank.json, rank.csv, rank.png"
                          f" in {meta['wall_s']:.0f}s.")
    return table


_ROW_ORDER = ["rank", "model", "image_size", "logme", "hscore", "nleep", "linear_probe", "knn", "stride_fit",
              "small_boxes", "combined", "predicted_relative_accuracy", "images_per_s", "params_m", "imagenet_top1",
              "feature_dim", "n_images", "n_boxes", "n_background", "seconds", "cache_hit"]
