"""A YOLO ``.pt`` (an Ultralytics checkpoint: a full pickle) converted once into headstart's weights
store as safetensors plus the model's YAML, so that every later run builds the model from the
YAML and loads plain tensors, never unpickling anything.

The conversion unpickles the file, which runs whatever code the file holds: it happens only when
the user says so with ``--trust-pickle``. Store layout, beside the timm weights::

    <store>/yolo11n/<sha256[:16]>.safetensors   # the model's state dict (float32)
    <store>/yolo11n/<sha256[:16]>.yaml          # its resolved model YAML (family, scale, nc, layers)

and an index.json record with ``mapping: ultralytics``, the class names and the source's sha256.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from headstart.errors import ConfigError, WeightsMismatchError

__all__ = ["import_yolo_checkpoint", "find_yolo_weights", "YoloWeights", "PICKLE_REFUSAL"]

PICKLE_REFUSAL = (
    "{file} is a pickle (Ultralytics saves whole Python objects): loading it runs any code it contains."
    " headstart loads it only once, to convert it into safetensors + the model YAML, and only when you"
    " trust where the file came from: rerun with --trust-pickle. Later runs read the converted files and"
    " never unpickle."
)


class YoloWeights:
    """Weights of a YOLO detector found offline: the safetensors file and the YAML beside it."""

    def __init__(self, model_name: str, source: str, path: Path, sha256: str | None, yaml_path: Path | None):
        self.model_name, self.source, self.path, self.sha256, self.yaml_path = (
            model_name,
            source,
            path,
            sha256,
            yaml_path,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "source": self.source, "path": str(self.path), "sha256": self.sha256}


def import_yolo_checkpoint(
    file: str | os.PathLike, model_name: str, *, trust_pickle: bool = False, store_root: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Convert ``file`` (an Ultralytics detection ``.pt``) into the store for ``model_name``;
    returns the store's record. Refuses without ``trust_pickle``."""
    from headstart.tasks.detection.yolo import YOLO_DETECTORS, is_yolo

    path = Path(file)
    if not is_yolo(model_name):
        from headstart._validation import did_you_mean

        raise ConfigError(
            f"{model_name!r} is not a YOLO detector headstart knows.{did_you_mean(model_name, YOLO_DETECTORS)}"
            f" Known: {', '.join(YOLO_DETECTORS)}."
        )
    if not path.is_file():
        raise ConfigError(f"The weights file {str(path)!r} does not exist. Pass the path of your .pt file.")
    if not trust_pickle:
        raise ConfigError(PICKLE_REFUSAL.format(file=str(path)))
    import torch
    from safetensors.torch import save_file

    from headstart.models import store as _store
    from headstart.tasks.detection.yolo.model import build_yolo_model, model_yaml_text
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()  # its classes must be importable to unpickle the checkpoint
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    module = ckpt
    if isinstance(ckpt, dict):
        module = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
    if not isinstance(module, torch.nn.Module) or not isinstance(getattr(module, "yaml", None), dict):
        raise WeightsMismatchError(
            f"{str(path)!r} is not an Ultralytics model checkpoint (no model with a YAML in it)."
        )
    model_yaml = dict(module.yaml)
    family_file = str(model_yaml.get("yaml_file", ""))
    scale = model_yaml.get("scale")
    if not family_file.startswith(model_name[:-1]) or (scale and scale != model_name[-1]):
        raise WeightsMismatchError(
            f"{str(path)!r} holds a {family_file or 'different'} model (scale {scale}), not {model_name!r}."
            f" Pass the --model it was trained as."
        )
    state = {k: v.detach().float().contiguous() for k, v in module.state_dict().items()}
    nc = int(model_yaml.get("nc") or len(getattr(module, "names", {}) or {}) or 80)
    rebuilt = build_yolo_model(model_yaml, nc)
    rebuilt.load_state_dict(state)  # strict: the YAML alone rebuilds this model
    with torch.inference_mode():
        out = rebuilt.eval()(torch.rand(1, 3, 64, 64))
    if not torch.isfinite(out[0] if isinstance(out, (tuple, list)) else out).all():
        raise WeightsMismatchError(f"{str(path)!r} gives non-finite outputs once converted; it cannot be used.")
    names = getattr(module, "names", None) or {}
    classes = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    folder = _store.weights_dir(store_root) / model_name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".import.safetensors.tmp"
    save_file(state, str(tmp), metadata={"headstart": json.dumps({"model": model_name, "source": str(path)})})
    digest = _store.sha256_file(tmp)
    final = folder / f"{digest[:16]}.safetensors"
    os.replace(tmp, final)
    from headstart._io import atomic_write_text

    atomic_write_text(final.with_suffix(".yaml"), model_yaml_text(rebuilt))
    entry = {
        "model": model_name,
        "file": f"{model_name}/{final.name}",
        "yaml": f"{model_name}/{final.stem}.yaml",
        "sha256": digest,
        "source_sha256": _store.sha256_file(path),
        "source": f"import:{path.name}",
        "mapping": "ultralytics",
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timm_version": "",
        "torch_version": torch.__version__.split("+")[0],
        "classes": classes,
        "verified": "strict load into the model built from its YAML + finite forward pass",
    }
    _store.add_entry(entry, store_root)
    return {**entry, "path": str(final)}


def find_yolo_weights(
    model_name: str, *, explicit: str | os.PathLike | None = None, store_root: str | os.PathLike | None = None
) -> YoloWeights | None:
    """``explicit`` (a .safetensors converted by ``weights import``), else the newest store record of
    ``model_name`` converted from Ultralytics, else None (the run trains from the YAML)."""
    from headstart.models import store as _store

    if explicit is not None:
        path = Path(explicit)
        if path.suffix != ".safetensors" or not path.is_file():
            raise ConfigError(
                f"--weights {str(path)!r} must be an existing .safetensors file for a YOLO detector."
                f" Convert a .pt once with: headstart weights import FILE.pt --model {model_name}"
                " --trust-pickle"
            )
        yaml_path = path.with_suffix(".yaml")
        return YoloWeights(
            model_name, "explicit", path, _store.sha256_file(path), yaml_path if yaml_path.is_file() else None
        )
    for entry in _store.entries_for(model_name, store_root):
        if entry.get("mapping") == "ultralytics":
            base = _store.weights_dir(store_root)
            yaml_path = base / entry["yaml"] if entry.get("yaml") else None
            return YoloWeights(model_name, "store", Path(entry["path"]), entry.get("sha256"), yaml_path)
    return None
