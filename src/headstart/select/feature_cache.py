"""Penultimate features on disk, so a backbone runs over an image set once.

An entry is one safetensors file holding ``features`` (N, D) float32 and ``labels`` (N,) int64 for
a list of images, in the list's order, under a folder per ``(model, weights sha256, preprocessing)``
group. The key of an entry also covers every image's absolute path, size, mtime and label, so
editing, replacing or relabelling any image -- or changing the weights file, the input size or any
part of the preprocessing -- misses the cache instead of serving stale features.

A request for a *subset* of an entry's images is served from that entry (``headstart rank`` caches
a sample of the training split; fit's linear probe then needs the whole split or another sample).
Writes are atomic (temp file + ``os.replace``), so a crash or a concurrent writer never leaves a
half-written entry; an unreadable entry counts as a miss and is rebuilt.

Default location: ``$HEADSTART_FEATURES_DIR`` or ``~/.cache/headstart/features``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from headstart._io import atomic_write

__all__ = ["FeatureCache", "BoundFeatureCache", "BoxFeatureCache", "default_features_dir", "ENV_VAR"]

ENV_VAR = "HEADSTART_FEATURES_DIR"
FORMAT = 1


def default_features_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "headstart" / "features"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _image_rows(samples: Sequence[Any]) -> list[list]:
    """(absolute path, size, mtime_ns, label) of each sample, in order; missing files get -1."""
    rows = []
    for s in samples:
        path = os.path.abspath(s.path)
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        rows.append([path, size, mtime, int(s.label)])
    return rows


class FeatureCache:
    """On-disk cache of (features, labels) for (model, weights, preprocessing, images)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_features_dir()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def group_key(model: str, weights_sha256: str | None, preprocessing: Mapping[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, "model": model, "weights_sha256": weights_sha256 or "random-init",
                "preprocessing": dict(preprocessing)}

    def _group_dir(self, group: dict[str, Any]) -> Path:
        return self.root / _digest(group)[:32]

    def get(
        self, model: str, weights_sha256: str | None, preprocessing: Mapping[str, Any], samples: Sequence[Any]
    ):
        """Cached ``(features, labels)`` tensors for ``samples`` in their order, or None on a miss."""
        import torch

        group = self.group_key(model, weights_sha256, preprocessing)
        folder = self._group_dir(group)
        rows = _image_rows(samples)
        if not rows or not folder.is_dir():
            self.misses += 1
            return None
        exact = folder / f"{_digest(rows)[:40]}.safetensors"
        candidates = [exact] + sorted(p for p in folder.glob("*.safetensors") if p != exact)
        wanted = {tuple(r): i for i, r in enumerate(rows)}
        for file in candidates:
            loaded = self._read(file, group)
            if loaded is None:
                continue
            feats, labels, entry_rows = loaded
            position = {tuple(r): i for i, r in enumerate(entry_rows)}
            if all(key in position for key in wanted):
                idx = torch.tensor([position[tuple(r)] for r in rows], dtype=torch.long)
                self.hits += 1
                return feats[idx].clone(), labels[idx].clone()
        self.misses += 1
        return None

    def put(self, model: str, weights_sha256: str | None, preprocessing: Mapping[str, Any], samples: Sequence[Any],
            features, labels) -> Path:
        from safetensors.torch import save_file

        group = self.group_key(model, weights_sha256, preprocessing)
        rows = _image_rows(samples)
        if len(rows) != len(features) or len(rows) != len(labels):
            raise ValueError(f"{len(rows)} samples but {len(features)} feature rows and {len(labels)} labels")
        file = self._group_dir(group) / f"{_digest(rows)[:40]}.safetensors"
        file.parent.mkdir(parents=True, exist_ok=True)
        meta = {"group": json.dumps(group, sort_keys=True), "images": json.dumps(rows)}
        tensors = {"features": features.float().contiguous().cpu(), "labels": labels.long().contiguous().cpu()}
        return atomic_write(file, lambda tmp: save_file(tensors, tmp, metadata=meta))

    def get_or_compute(self, model: str, weights_sha256: str | None, preprocessing: Mapping[str, Any],
                       samples: Sequence[Any], compute: Callable[[], tuple]):
        """Cached features for ``samples`` or ``compute()`` (then stored); returns (features, labels, hit)."""
        found = self.get(model, weights_sha256, preprocessing, samples)
        if found is not None:
            return found[0], found[1], True
        feats, labels = compute()
        try:
            self.put(model, weights_sha256, preprocessing, samples, feats, labels)
        except OSError:  # a full or read-only disk must not fail the run: the cache is an optimisation
            pass
        return feats, labels, False

    @staticmethod
    def _read(file: Path, group: dict[str, Any]):
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(file), framework="pt") as f:
                meta = f.metadata() or {}
            if json.loads(meta.get("group", "null")) != json.loads(json.dumps(group)):
                return None
            tensors = load_file(str(file))
            return tensors["features"], tensors["labels"], json.loads(meta["images"])
        except (OSError, ValueError, KeyError, SafetensorError):
            return None  # unreadable or foreign: treat as a miss


class BoundFeatureCache:
    """A :class:`FeatureCache` bound to one model/weights/preprocessing and named sample lists --
    what :class:`headstart.engine.trainer.Trainer` takes as ``feature_cache`` for its linear probe."""

    def __init__(self, cache: FeatureCache, model: str, weights_sha256: str | None,
                 preprocessing: Mapping[str, Any], samples: Mapping[str, Sequence[Any]]):
        self.cache = cache
        self.model = model
        self.weights_sha256 = weights_sha256
        self.preprocessing = dict(preprocessing)
        self.samples = {k: list(v) for k, v in samples.items()}

    def lookup(self, kind: str):
        """Cached ``(features, labels)`` of the ``kind`` split, or None."""
        return self.cache.get(self.model, self.weights_sha256, self.preprocessing, self.samples[kind])

    def store(self, kind: str, features, labels) -> None:
        """Keep ``kind``'s features (a full or read-only disk is ignored: the cache is an optimisation)."""
        try:
            self.cache.put(self.model, self.weights_sha256, self.preprocessing, self.samples[kind], features, labels)
        except OSError:
            pass

    def features(self, kind: str, compute: Callable[[], tuple]):
        """``(features, labels)`` of the ``kind`` split ('train_eval', 'val'), from the cache or ``compute()``."""
        if kind not in self.samples:
            return compute()
        feats, labels, _ = self.cache.get_or_compute(
            self.model, self.weights_sha256, self.preprocessing, self.samples[kind], compute
        )
        return feats, labels


class BoxFeatureCache:
    """The same design for detection's box-level features (``headstart rank`` on a detection
    dataset): one safetensors file of named tensors (``features``, ``labels``, ``box_sizes``) per
    (model, weights sha256, preprocessing, RoI settings) group and image list, the key covering
    every image's path, size, mtime, boxes, labels and ignore flags. Exact matches only: the
    RoIs of an image list (its background ones included) are drawn for that list."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_features_dir()

    def _file(self, group: Mapping[str, Any], samples: Sequence[Any]) -> tuple[Path, dict, list]:
        group = {"format": FORMAT, "kind": "boxes", **dict(group)}
        rows = []
        for s in samples:
            path = os.path.abspath(s.path)
            try:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, -1
            rows.append([path, size, mtime, [list(b) for b in s.boxes], list(s.labels), list(s.ignore)])
        return self.root / _digest(group)[:32] / f"{_digest(rows)[:40]}.safetensors", group, rows

    def get_or_compute(self, group: Mapping[str, Any], samples: Sequence[Any], compute: Callable[[], dict]):
        """(``compute()``'s dict of tensors, or the cached one, hit)."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file, save_file

        file, group, rows = self._file(group, samples)
        try:
            with safe_open(str(file), framework="pt") as f:
                meta = f.metadata() or {}
            if json.loads(meta.get("group", "null")) == json.loads(json.dumps(group)) and \
                    json.loads(meta.get("images", "null")) == rows:
                return load_file(str(file)), True
        except (OSError, ValueError, KeyError, SafetensorError):
            pass  # missing, unreadable or foreign: a miss
        tensors = {k: v.contiguous().cpu() for k, v in compute().items()}
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            meta = {"group": json.dumps(group, sort_keys=True), "images": json.dumps(rows)}
            atomic_write(file, lambda tmp: save_file(tensors, tmp, metadata=meta))
        except OSError:  # the cache is an optimisation: a full or read-only disk must not fail the run
            pass
        return tensors, False
