"""``POST /predict`` for a detector: one image in, its boxes out as JSON.

Parameters, as query parameters (``?conf=0.4&max_det=20``) or as fields of the multipart form or
of the JSON body: ``conf`` (the lowest score kept; default the run's, the F1-best threshold on its
evaluated split) and ``max_det`` (most boxes; default the run's). The answer::

    {"boxes": [{"box": [x1, y1, x2, y2], "label": "cat", "score": 0.91}, ...],
     "width": 640, "height": 480, "conf": 0.4, "max_det": 20, "backend": "onnx"}

with the boxes in the uploaded image's own pixels (upright, after its EXIF orientation), best first.
The images of a micro-batch keep their own sizes: the batch is a list, which the PyTorch backend
runs as one padded batch and the ONNX backend one image at a time.
"""

# no `from __future__ import annotations`: FastAPI reads the handler's annotations (Request) at runtime

import math

from headstart.serve.uploads import UploadError, decode_upload_sized

__all__ = ["add_detection_routes", "parse_conf", "parse_max_det"]


def _value(name: str, query, fields):
    value = query.get(name)
    return fields.get(name) if value is None else value


def parse_conf(value, default):
    if value is None or value == "":
        return 0.0 if default is None else float(default)
    try:
        conf = float(value)
    except (TypeError, ValueError):
        conf = math.nan
    if not 0.0 <= conf <= 1.0:  # also false for NaN
        raise UploadError(422, f"conf must be a number in [0, 1] (the lowest score kept). Got {value!r}.")
    return conf


def parse_max_det(value, default: int) -> int:
    if value is None or value == "":
        return int(default)
    try:
        number = float(value)
        ok = number.is_integer() and number >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise UploadError(422, f"max_det must be a whole number >= 1 (the most boxes returned). Got {value!r}.")
    return int(number)


def add_detection_routes(app, backend, batcher, settings, image_bytes) -> None:
    """Register ``POST /predict`` for ``backend`` (a detector: ``detect(arrays)``) on ``app``;
    ``image_bytes(request, fields)`` is the app's upload reader."""
    from fastapi import Request
    from starlette.concurrency import run_in_threadpool

    from headstart.tasks.detection.predict import prepare_box_image, select_boxes

    pre, classes = backend.preprocessing, list(backend.classes)

    def prepare(data: bytes):
        image, size = decode_upload_sized(data, max_pixels=settings.max_pixels, draft=2 * pre.resize_size)
        array = prepare_box_image(image, pre)
        return array, array.shape[-1] / size[0], size

    @app.post("/predict")
    async def predict(request: Request):
        fields: dict = {}
        data = await image_bytes(request, fields)
        conf = parse_conf(_value("conf", request.query_params, fields), backend.conf)
        max_det = parse_max_det(_value("max_det", request.query_params, fields), backend.max_det)
        array, scale, size = await run_in_threadpool(prepare, data)
        boxes, scores, labels = select_boxes(*(await batcher.submit(array)), conf, max_det)
        found = [
            {"box": [round(float(v) / scale, 2) for v in box], "label": classes[int(label)], "score": float(score)}
            for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist())
        ]
        return {
            "boxes": found,
            "width": size[0],
            "height": size[1],
            "conf": conf,
            "max_det": max_det,
            "backend": backend.kind,
        }
