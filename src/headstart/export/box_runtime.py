"""The torch-free runtime of an exported detector: onnxruntime + numpy.

The split between the graph and this module (see :mod:`headstart.export.detection_onnx`): the ONNX
graph holds everything torchvision's detector does (normalisation, padding to the stride, backbone,
FPN, heads, box decoding, the detector's score floor, NMS and its cap on detections). What stays
outside is what depends on the image file or on the request: decoding and the longer-side resize
(:func:`~headstart.tasks.detection.predict.load_box_image`), and after the graph the ``conf`` /
``max_det`` selection (:func:`~headstart.tasks.detection.predict.select_boxes`), the label names and
the scale back to the image's own pixels, all in :class:`~headstart.tasks.detection.predict.BoxPredictor`.

One image per call: the graph takes ``(1, 3, H, W)`` with H and W dynamic (each image keeps its
aspect ratio, so images of a batch differ in size) because torchvision's post-processing loops over
the images of a batch in Python, which the exporter unrolls at a fixed count. :meth:`detect` loops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from headstart.export.metadata import INPUT_NAME, InvalidModelError, metadata_from_props
from headstart.export.preprocess import preprocessing_from_metadata

__all__ = ["OnnxBoxBackend", "is_detection_metadata"]


def is_detection_metadata(meta: dict) -> bool:
    return meta.get("task") == "detect"


class OnnxBoxBackend:
    """An ONNX detector written by ``headstart export``: ``detect(arrays)`` -> ``[(boxes, scores,
    class indices), ...]``, boxes xyxy in each array's pixels, sorted by score."""

    kind = "onnx"
    task = "detect"

    def __init__(self, path: str | Path, *, threads: int | None = None, session=None, metadata: dict | None = None):
        from headstart._imports import optional_import

        self.path = Path(path)
        if session is None:
            ort = optional_import("onnxruntime", extra="predict")
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
                options.inter_op_num_threads = 1
            # No busy-waiting between the many short ops of a detector's graph: with 2 threads on a
            # shared 2-core machine, spinning doubled the CPU per image (81 vs 41 ms, FCOS at 256 px)
            # and took 8x the wall time; with 1 thread it makes no difference.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
                raise InvalidModelError(
                    f"onnxruntime cannot load {str(path)!r}: {exc}. Export the run folder again."
                ) from None
        self.session = session
        if metadata is None:
            metadata = metadata_from_props(session.get_modelmeta().custom_metadata_map, str(path))
        if not is_detection_metadata(metadata):
            raise InvalidModelError(
                f"{str(path)!r} is not a detection export (its task is {metadata.get('task', 'classify')!r})."
            )
        self.metadata = metadata
        self.classes = list(metadata["labels"])
        self.preprocessing = preprocessing_from_metadata(metadata)
        self.conf = metadata.get("conf")
        self.max_det = int(metadata.get("max_det", 100))
        self.first_label = int(metadata["first_label"])

    def detect(self, arrays: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for array in arrays:
            batch = np.ascontiguousarray(array, dtype=np.uint8)[None]
            boxes, scores, labels = self.session.run(None, {INPUT_NAME: batch})
            out.append(
                (
                    np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.asarray(scores, np.float32).reshape(-1),
                    np.asarray(labels, np.int64).reshape(-1) - self.first_label,
                )
            )
        return out
