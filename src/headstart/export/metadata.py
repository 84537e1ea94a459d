"""What an exported model carries about itself: labels, preprocessing, versions and provenance.

Torch-free on purpose: the light ``predict`` install (onnxruntime + Pillow + numpy) reads it.

In an ONNX file the record is stored in ``metadata_props`` (string key/value pairs): the whole
record as JSON under ``headstart``, and the most useful fields again as their own keys so that
tools such as Netron show them. A TorchScript export stores the same JSON inside the file (an extra
file, ``headstart.json``) and beside it (``model.ts.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from headstart.errors import HeadstartError

__all__ = ["build_metadata", "onnx_metadata_props", "metadata_from_props", "read_onnx_metadata", "InvalidModelError",
           "INPUT_NAME", "OUTPUT_NAME", "FORMAT_VERSION"]

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
FORMAT_VERSION = 1
INPUT_DESCRIPTION = ("uint8 RGB images, NCHW (N, 3, S, S) with S = input_size, values 0..255, after resizing the"
                     " shorter side to resize_size with `interpolation` and a centre crop; normalisation is inside")
OUTPUT_DESCRIPTION = "class probabilities (N, num_classes) in the order of `labels`"


class InvalidModelError(HeadstartError, ValueError):
    """A model file is not a headstart export (or its metadata is damaged)."""


def build_metadata(run, *, fmt: str) -> dict[str, Any]:
    """The metadata record of an export of the :class:`~headstart.run_folder.RunFolder` ``run``."""
    from headstart._version import __version__
    from headstart.data.transforms import Preprocessing

    model = run.read_json("model/model.json")
    classes = list(run.read_json("model/labels.json")["classes"])
    pre = Preprocessing.from_dict(run.read_json("model/preprocessing.json"))
    provenance_path = run.model_dir / "provenance.json"
    provenance = run.read_json("model/provenance.json") if provenance_path.is_file() else {}
    return {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "headstart_version": __version__,
        "task": model.get("task", "classify"),
        "architecture": model["architecture"],
        "num_outputs": model["num_outputs"],
        "labels": classes,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input": INPUT_DESCRIPTION,
        "output": OUTPUT_DESCRIPTION,
        "preprocessing": {**pre.to_dict(), "resize_size": pre.resize_size},
        "provenance": {**provenance, "run_dir": str(Path(run.path).resolve())},
    }


def onnx_metadata_props(meta: Mapping[str, Any]) -> dict[str, str]:
    """``metadata_props`` entries (all strings) for an ONNX model."""
    pre = meta["preprocessing"]
    return {
        "headstart": json.dumps(meta, sort_keys=True),
        "labels": json.dumps(meta["labels"]),
        "input_size": str(pre["input_size"]),
        "resize_size": str(pre["resize_size"]),
        "interpolation": pre["interpolation"],
        "crop_pct": str(pre["crop_pct"]),
        "crop_mode": pre["crop_mode"],
        "mean": json.dumps(pre["mean"]),
        "std": json.dumps(pre["std"]),
        "headstart_version": meta["headstart_version"],
        "architecture": meta["architecture"],
        "input": meta["input"],
        "output": meta["output"],
    }


def metadata_from_props(props: Mapping[str, str], source: str) -> dict[str, Any]:
    """The metadata record from ONNX ``metadata_props``; a clear error when it is not a headstart export."""
    text = props.get("headstart")
    if text is None:
        raise InvalidModelError(
            f"The ONNX file {source!r} has no headstart metadata (labels, preprocessing). Only models written by"
            " `headstart export RUN --format onnx` can be used directly; export the run folder again."
        )
    return _validated(text, source)


def _validated(text: str, source: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
        ok = isinstance(meta["labels"], list) and int(meta["preprocessing"]["input_size"]) > 0
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidModelError(
            f"The headstart metadata of {source!r} is damaged (it needs labels and preprocessing)."
            " Export the run folder again."
        )
    if meta.get("format_version", 1) > FORMAT_VERSION:
        raise InvalidModelError(
            f"{source!r} was exported by a newer headstart ({meta.get('headstart_version')}, metadata format"
            f" {meta['format_version']}). Upgrade headstart: pip install -U headstart."
        )
    return meta


def read_torchscript_sidecar(path: str | Path) -> dict[str, Any]:
    """The metadata JSON written beside a TorchScript export (``model.ts`` -> ``model.ts.json``)."""
    path = Path(path)
    side = path.with_name(path.name + ".json")
    if not side.is_file():
        raise InvalidModelError(
            f"The TorchScript file {str(path)!r} has no metadata inside or beside it ({side.name}). Only models"
            " written by `headstart export RUN --format torchscript` can be used directly."
        )
    return _validated(side.read_text(encoding="utf-8"), str(side))


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The headstart metadata of an ONNX file, read with onnxruntime (no onnx or torch needed)."""
    from headstart._imports import optional_import

    ort = optional_import("onnxruntime", extra="predict")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return metadata_from_props(session.get_modelmeta().custom_metadata_map, str(path))
