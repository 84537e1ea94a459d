"""ONNX export of a detection run: ``RUN/export/model.onnx``, one uint8 RGB image in, boxes out.

What the graph holds: scaling to [0, 1], the backbone's mean/std normalisation, torchvision's
resize rule (a no-op here: the longer side already is the input size) and padding to the stride,
the backbone, FPN, heads, box decoding, the detector's score floor (0.05), NMS per class and its
cap on detections (100; 300 for RetinaNet). torchvision's detectors are written to trace into ONNX
at opset >= 11, and ``torch.onnx.export(..., dynamo=False)`` exports Faster R-CNN, FCOS and
RetinaNet whole, so nothing of the model is left to a runtime step. A YOLO run (Ultralytics'
model behind :class:`~headstart.tasks.detection.yolo.model.YoloDetector`, torchvision's interface)
traces the same way: padding to the square input, the network, box decoding, the score floor
(0.001), the pre-NMS cap and ``batched_nms`` per class; see docs/architecture.md for why not
Ultralytics' own exporter.

What stays outside (torch-free, :mod:`headstart.export.box_runtime`): decoding the file and the
longer-side resize (the image's own size decides the shape), then the request's ``conf`` and
``max_det`` (a score cut and a slice of the score-sorted output) and the scale back to the image's
pixels. ``conf`` and ``max_det`` are outside so that ``predict --conf`` and ``serve ?conf=`` need
no second export; the run's values are the defaults, stored in the metadata.

Batch: one image per call, ``(1, 3, H, W)`` with H and W dynamic, not a dynamic batch. The images
of a batch have different aspect ratios, and torchvision's post-processing loops over a batch's
images in Python, which the exporter unrolls at the example's count; padding images to a common
size would also change the boxes near the padded edges. The runtime loops over images.

The parity check (:mod:`headstart.export.box_parity`) runs before the file is kept.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

from headstart.export.box_parity import BOX_TOLERANCE, MAP_TOLERANCE, SCORE_TOLERANCE

__all__ = ["export_detection_onnx", "detection_metadata", "OUTPUT_NAMES"]

OUTPUT_NAMES = ("boxes", "scores", "labels")
INPUT_DESCRIPTION = (
    "one uint8 RGB image, NCHW (1, 3, H, W), values 0..255, resized with `interpolation` so that"
    " its longer side is input_size (aspect ratio kept, no padding); normalisation is inside"
)
OUTPUT_DESCRIPTION = (
    "boxes (K, 4) xyxy in the input's pixels, scores (K,) and labels (K,) (the model's label;"
    " class index = label - first_label), sorted by score, after NMS; K <= detections_per_img."
    " Keep scores >= conf and the first max_det, then divide the boxes by the resize scale"
)


def detection_metadata(run, record: dict[str, Any], model) -> dict[str, Any]:
    """The metadata record of a detector's export: the classification record's fields plus the
    detector, its thresholds and the label offset."""
    from headstart.export.metadata import build_metadata
    from headstart.tasks.detection.export import detector_limits

    meta = build_metadata(run, fmt="onnx")
    score_floor, per_image = detector_limits(model)
    spec = record["detector"]
    meta.update(
        {
            "task": "detect",
            "output_name": ",".join(OUTPUT_NAMES),
            "output_names": list(OUTPUT_NAMES),
            "input": INPUT_DESCRIPTION,
            "output": OUTPUT_DESCRIPTION,
            "detector": spec.to_dict(),
            "first_label": spec.first_label,
            "conf": record["conf"],
            "max_det": record["max_det"],
            "score_floor": score_floor,
            "detections_per_img": per_image,
            "dynamic_batch": False,
        }
    )
    return meta


def _export_graph(graph, example, path: Path, opset: int) -> None:
    import torch

    from headstart.export.metadata import INPUT_NAME

    dynamic = {INPUT_NAME: {2: "height", 3: "width"}, **{name: {0: "detections"} for name in OUTPUT_NAMES}}
    with warnings.catch_warnings():
        # the legacy exporter announces its deprecation, and tracing warns about torchvision's
        # shape arithmetic (which torchvision writes to trace correctly; the parity check verifies)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _attach_metadata(path: Path, meta: dict) -> None:
    import json

    import onnx

    from headstart.export.metadata import onnx_metadata_props

    model = onnx.load(str(path))
    del model.metadata_props[:]
    props = onnx_metadata_props(meta)
    props.update(
        {
            "task": "detect",
            "detector": meta["detector"]["detector"],
            "conf": json.dumps(meta["conf"]),
            "max_det": str(meta["max_det"]),
            "score_floor": str(meta["score_floor"]),
            "detections_per_img": str(meta["detections_per_img"]),
            "first_label": str(meta["first_label"]),
        }
    )
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "headstart"
    model.producer_version = meta["headstart_version"]
    model.doc_string = (
        f"{meta['detector']['detector']} detector on {meta['architecture']}: {meta['input']} -> {meta['output']}"
    )
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def export_detection_onnx(
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    opset: int = 17,
    images: Sequence[str | Path] | None = None,
    tolerance: float = SCORE_TOLERANCE,
    box_tolerance: float = BOX_TOLERANCE,
    map_tolerance: float = MAP_TOLERANCE,
):
    """Export a detection run to ONNX (default ``RUN/export/model.onnx``) and keep the file only if
    it passes :func:`~headstart.export.box_parity.check_detector` (boxes matched by IoU, scores
    within ``tolerance``, coordinates within ``box_tolerance`` pixels, mAP on the run's evaluated
    split within ``map_tolerance`` of the run's). Raises
    :class:`~headstart.export.parity.ParityError` and removes the file otherwise."""
    import torch

    from headstart._imports import optional_import
    from headstart.export.box_parity import check_detector, verify_or_remove_boxes
    from headstart.export.box_runtime import OnnxBoxBackend
    from headstart.export.parity import ExportResult
    from headstart.run_folder import RunFolder
    from headstart.tasks.detection.export import DetectorGraph, load_run_model

    optional_import("onnx", extra="export")
    optional_import("onnxruntime", extra="export")
    t0 = time.perf_counter()
    run = RunFolder.open(run_dir)
    target = Path(output) if output is not None else run.path / "export" / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    model, record = load_run_model(run.path)
    graph = DetectorGraph(model).eval()
    meta = detection_metadata(run, record, model)
    size = record["preprocessing"].input_size
    # Written beside the target and renamed once verified: a failed export never replaces a good file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        # a landscape example: height and width are exported as dynamic and differ
        example = torch.zeros((1, 3, max(1, (size * 3) // 4), size), dtype=torch.uint8)
        _export_graph(graph, example, tmp, opset)
        _attach_metadata(tmp, meta)
        backend = OnnxBoxBackend(tmp)
        report = check_detector(
            graph,
            backend,
            run.path,
            record,
            images,
            score_tolerance=tolerance,
            box_tolerance=box_tolerance,
            map_tolerance=map_tolerance,
        )
        del backend
        verify_or_remove_boxes(report, tmp, target)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(target, "onnx", report, meta, seconds=time.perf_counter() - t0)
