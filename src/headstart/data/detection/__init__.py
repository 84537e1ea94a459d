"""The detection data layer: read COCO, COCO-export, YOLO and Pascal VOC datasets into checked
:class:`BoxSample` records, split them and save the split.

Entry point: :func:`load_detection_dataset` -> :class:`DetectionIndex`. No torch anywhere here;
names are imported lazily, like :mod:`headstart.data`.
"""

from __future__ import annotations

from headstart._lazy import attach

_LAZY = {
    "BoxSample": "headstart.data.detection.samples",
    "DetectionIndex": "headstart.data.detection.samples",
    "LAYOUTS": "headstart.data.detection.samples",
    "DetectionSummary": "headstart.data.detection.summary",
    "Problem": "headstart.data.detection.problems",
    "detect_layout": "headstart.data.detection.layout",
    "load_detection_dataset": "headstart.data.detection.index",
    "stratified_box_split": "headstart.data.detection.stratify",
    "save_detection_split": "headstart.data.detection.split_file",
    "load_detection_split": "headstart.data.detection.split_file",
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
