"""YOLO detectors from Ultralytics, an opt-in backend of the detection task (``headstart[yolo]``).

Ultralytics is AGPL-3.0: headstart never vendors or copies its code and imports it only inside
functions, through :func:`headstart.tasks.detection.yolo.runtime.load_ultralytics` (which sets its
offline, quiet environment first). Everything around the model stays headstart's: the data layer
reads and checks the dataset, the COCO evaluation scores the model's predictions, and the run
folder, predict and report are those of the torchvision detectors.

The parts: ``layout.py`` (the dataset written as a YOLO layout inside the run folder),
``recipe.py`` (headstart's config -> Ultralytics' train arguments), ``train.py`` (the training
driver), ``model.py`` (the model from its YAML, safetensors weights, the prediction adapter),
``weights.py`` (a ``.pt`` converted once into the weights store). This module stays light: no
torch, no Ultralytics.
"""

from __future__ import annotations

__all__ = ["YOLO_FAMILIES", "YOLO_DETECTORS", "is_yolo", "yaml_name"]

# the detect-model YAMLs of Ultralytics whose head is the anchor-free "Detect" with NMS (v8 style)
YOLO_FAMILIES = ("yolov8", "yolo11")
YOLO_SCALES = ("n", "s", "m", "l", "x")
YOLO_DETECTORS = tuple(f"{family}{scale}" for family in YOLO_FAMILIES for scale in YOLO_SCALES)


def is_yolo(detector: str | None) -> bool:
    """True for a detector name of this backend (``yolo11n``, ``yolov8s``, ...)."""
    return detector in YOLO_DETECTORS


def yaml_name(detector: str) -> str:
    """The model YAML Ultralytics builds ``detector`` from (``yolo11n`` -> ``yolo11n.yaml``: the
    family's YAML at scale ``n``)."""
    return f"{detector}.yaml"
