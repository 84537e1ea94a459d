"""``fit --model auto`` through a ranking, and fit's use of the feature cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["choose_by_rank", "choose_detection_backbone", "probe_feature_cache", "QUICK_BUDGET"]

QUICK_BUDGET = "2m"
# detection's model when nothing can be ranked: (name, reason)
DETECTION_FALLBACK = ("mobilenetv2_100", "model auto: mobilenetv2_100 (the backbone with real ImageNet weights offline"
                                         " that is cheapest per step)")


def _saved_ranking(cfg, index) -> tuple[Path, Any] | None:
    """The ranking that ``headstart rank DATA`` wrote to its default folder, when it was computed
    on this very dataset and split (same fingerprint)."""
    from headstart.select.rank import default_rank_dir
    from headstart.select.report import RankTable

    if cfg.data.path is None:
        return None
    path = default_rank_dir(cfg.data.path) / "rank.json"
    if not path.is_file():
        return None
    try:
        table = RankTable.from_json(path)
    except (OSError, ValueError):
        return None
    if table.meta.get("dataset", {}).get("fingerprint") != index.fingerprint() or not table.rows:
        return None
    return path, table


def choose_by_rank(cfg, index, dev, run_dir: Path, verbose: bool) -> tuple[str, int | None, str]:
    """(model, image size or None, reason) for ``model: auto``.

    1. A ranking saved by ``headstart rank`` for this dataset (same fingerprint): its best row
       whose weights are available offline.
    2. Else, when at least 2 curated candidates have offline weights: a quick ranking of them
       (budget :data:`QUICK_BUDGET`, written to ``<run>/rank``); its features stay in the cache
       for the linear probe.
    3. Else the rule of :func:`headstart.models.choice.choose_model`.
    """
    from headstart.models.choice import choose_model
    from headstart.models.resolve import has_offline_weights
    from headstart.models.zoo import candidates

    saved = _saved_ranking(cfg, index)
    if saved is not None:
        path, table = saved
        for row in table.rows:
            if has_offline_weights(row["model"]):
                return row["model"], row.get("image_size"), (
                    f"{row['model']} @{row['image_size']}px ranked #{row['rank']} of {len(table.rows)} by"
                    f" `headstart rank` ({path}; combined score {row['combined']:.2f}).")
    offline = [c.name for c in candidates(dev.device.type) if has_offline_weights(c.name)]
    if len(offline) >= 2:
        from headstart.select.rank import rank

        table = rank(index, candidates=offline, budget=QUICK_BUDGET, out=Path(run_dir) / "rank", seed=cfg.train.seed,
                     device=str(dev.device), max_images=500, verbose=verbose)
        if table.rows:
            best = table.best
            return best["model"], best["image_size"], (
                f"{best['model']} @{best['image_size']}px ranked best of {len(table.rows)} candidates with offline"
                f" weights (quick rank on {table.meta['n_images']} training images, combined score"
                f" {best['combined']:.2f}; table in {Path(run_dir) / 'rank'}).")
    choice = choose_model(len(index.splits["train"]), dev.device.type)
    return choice.name, None, choice.reason


def choose_detection_backbone(cfg, index, dev, run_dir: Path, verbose: bool) -> tuple[str, int | None, str]:
    """(backbone, input size or None, reason) for ``model: auto`` on a detection dataset, by the
    same rules as :func:`choose_by_rank`: a saved ``headstart rank`` table of this dataset (its
    best row with offline weights, at the requested input size when one is set); else a quick
    ranking of the curated candidates with offline weights (at least 2) at the input size fit will
    use, written to ``<run>/rank``; else mobilenetv2_100, the cheapest backbone per step with real
    ImageNet weights offline."""
    from headstart.models.resolve import has_offline_weights
    from headstart.models.zoo import candidates

    size = cfg.model.image_size
    saved = _saved_ranking(cfg, index)
    if saved is not None:
        path, table = saved
        for row in table.rows:
            if has_offline_weights(row["model"]) and size in (None, row["image_size"]):
                return row["model"], row["image_size"], (
                    f"model auto: {row['model']} @{row['image_size']}px ranked #{row['rank']} of {len(table.rows)}"
                    f" by `headstart rank` ({path}; combined score {row['combined']:.2f}).")
    offline = [c.name for c in candidates(dev.device.type) if has_offline_weights(c.name)]
    if len(offline) >= 2:
        from headstart.errors import ConfigError
        from headstart.select.rank import rank

        try:
            table = rank(index, candidates=offline, image_sizes=None if size is None else [size],
                         budget=QUICK_BUDGET, out=Path(run_dir) / "rank", seed=cfg.train.seed, device=str(dev.device),
                         max_images=200, verbose=verbose)
        except ConfigError as exc:  # not even one candidate fits the quick budget on this machine
            return DETECTION_FALLBACK[0], None, f"{DETECTION_FALLBACK[1]}; the quick rank did not run: {exc}"
        if table.rows:
            best = table.best
            return best["model"], best["image_size"], (
                f"model auto: {best['model']} ranked best of {len(table.rows)} backbones with offline weights"
                f" (quick rank on the boxes of {table.meta['n_images']} training images at {best['image_size']}px,"
                f" combined score {best['combined']:.2f}; table in {Path(run_dir) / 'rank'}).")
    return DETECTION_FALLBACK[0], None, DETECTION_FALLBACK[1]


def probe_feature_cache(model_name: str, weights, pre, index):
    """A :class:`BoundFeatureCache` for fit's linear probe, or None without pretrained weights
    (random-init features are not worth keeping) or when the weights' sha256 is unknown."""
    if weights is None or not getattr(weights, "sha256", None):
        return None
    from headstart.select.feature_cache import BoundFeatureCache, FeatureCache

    return BoundFeatureCache(FeatureCache(), model_name, weights.sha256, pre.to_dict(),
                             {"train_eval": index.splits["train"], "val": index.splits["val"]})
