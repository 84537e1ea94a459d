"""The HTTP app: ``POST /predict``, ``GET /health``, ``GET /model``.

``POST /predict`` takes one image, either as a multipart file (field ``image``) or as JSON
``{"image": "<base64>"}``, with an optional ``?top_k=`` (default 5), and answers
``{"label", "prob", "top_k": [{"label", "prob"}, ...], "backend"}``. For a detector (a detection run
folder or its ONNX export) it answers boxes instead, and takes ``conf`` and ``max_det`` as query
parameters or form / JSON fields (:mod:`headstart.serve.detection`). Errors are JSON
``{"detail": "..."}`` with 413 (too large), 415 (wrong content type) or 422 (not a readable image).
"""


import base64
import binascii
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from headstart.serve.uploads import BodySizeLimit, UploadError, decode_upload

__all__ = ["ServeSettings", "create_app", "load_serving_backend"]


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # a 40-megapixel photo; Pillow's own warning level is 89 MP
    default_top_k: int = 5


def load_serving_backend(path: str | Path, *, backend: str = "auto", device: str = "cpu", threads: int | None = None):
    """The backend for ``path``: an ``.onnx`` or TorchScript file as given; for a run folder, its
    ONNX export (``RUN/export/model.onnx``) when there is one and ``backend`` is ``auto`` or
    ``onnx``, else the run's PyTorch model."""
    from headstart._validation import check_choice
    from headstart.errors import RunFolderError
    from headstart.export.runtime import artefact_kind, load_backend

    backend = check_choice("backend", backend, ("auto", "onnx", "pytorch"))
    if artefact_kind(path) != "run":
        return load_backend(path, device=device, threads=threads)
    onnx_path = Path(path) / "export" / "model.onnx"
    if backend == "onnx" and not onnx_path.is_file():
        raise RunFolderError(f"The run folder {str(path)!r} has no ONNX export ({onnx_path}). Create it with"
                             f" `headstart export {path} --format onnx`, or serve with --backend pytorch.")
    if backend != "pytorch" and onnx_path.is_file():
        return load_backend(onnx_path, threads=threads)
    return load_backend(path, device=device)  # the run's PyTorch model (a classifier's or a detector's)


def create_app(model, settings: "ServeSettings | None" = None):
    """A FastAPI app serving ``model`` (a backend from :func:`load_serving_backend`, or a path)."""
    from headstart._imports import optional_import

    fastapi = optional_import("fastapi", extra="serve")
    optional_import("python_multipart", extra="serve", package="python-multipart")
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile

    from headstart.export.preprocess import prepare_image
    from headstart.serve.batching import MicroBatcher

    settings = settings or ServeSettings()
    backend = load_serving_backend(model) if isinstance(model, (str, Path)) else model
    pre, classes, meta = backend.preprocessing, list(backend.classes), backend.metadata
    detector = getattr(backend, "task", "classify") == "detect"
    if detector:  # images keep their aspect ratio: a batch is a list, and the backend returns boxes
        batcher = MicroBatcher(backend.detect, max_batch=settings.max_batch, max_wait_s=settings.max_wait_ms / 1000,
                               collate=list)
    else:
        batcher = MicroBatcher(backend.run, max_batch=settings.max_batch, max_wait_s=settings.max_wait_ms / 1000)
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = fastapi.FastAPI(title="headstart", version=str(meta.get("headstart_version", "")), lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)

    @app.exception_handler(UploadError)
    async def _upload_error(request, exc: UploadError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    def _prepare(data: bytes):
        image = decode_upload(data, max_pixels=settings.max_pixels, draft=2 * pre.resize_size)
        return prepare_image(image, pre)

    async def _image_bytes(request: Request, fields: dict | None = None) -> bytes:
        """The uploaded image's bytes; the other form / JSON fields go into ``fields``."""
        fields = {} if fields is None else fields
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=8)
            except Exception as exc:  # malformed multipart: starlette/python-multipart raise several types
                raise UploadError(422, f"The multipart body cannot be parsed ({exc}).") from None
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
            if upload is None:
                raise UploadError(422, "No file in the multipart body. Send the image as a file field named 'image'"
                                  " (curl -F image=@photo.jpg).")
            return await upload.read()
        if ctype.startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                raise UploadError(422, "The body is not valid JSON. Send {\"image\": \"<base64 of the file>\"}.") from None
            text = body.get("image") if isinstance(body, dict) else None
            if isinstance(body, dict):
                fields.update({k: v for k, v in body.items() if k != "image"})
            if not isinstance(text, str):
                raise UploadError(422, "The JSON body needs an 'image' field holding the base64 of the image file.")
            if "," in text[:100] and text.startswith("data:"):
                text = text.split(",", 1)[1]  # a data: URL
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise UploadError(422, "The 'image' field is not valid base64.") from None
        raise UploadError(415, f"Unsupported Content-Type {ctype or '(none)'!r}: send multipart/form-data (a file"
                          " field 'image') or application/json ({\"image\": \"<base64>\"}).")

    if detector:
        from headstart.serve.detection import add_detection_routes

        add_detection_routes(app, backend, batcher, settings, _image_bytes)
    else:

        @app.post("/predict")
        async def predict(request: Request, top_k: int | None = None):
            k = settings.default_top_k if top_k is None else top_k
            if k < 1:
                raise UploadError(422, f"top_k must be at least 1. Got {k}.")
            array = await run_in_threadpool(_prepare, await _image_bytes(request))
            probs = await batcher.submit(array)
            order = sorted(range(len(classes)), key=lambda i: -float(probs[i]))[: min(k, len(classes))]
            top = [{"label": classes[i], "prob": float(probs[i])} for i in order]
            return {"label": top[0]["label"], "prob": top[0]["prob"], "top_k": top, "backend": backend.kind}

    @app.get("/health")
    async def health():
        sizes = batcher.batch_sizes
        return {"status": "ok" if batcher.running else "stopped", "backend": backend.kind,
                "uptime_s": round(time.time() - started, 1), "images": batcher.images,
                "mean_batch": round(sum(sizes) / len(sizes), 2) if sizes else None}

    @app.get("/model")
    async def model_info():
        return {"labels": classes, "input_size": pre.input_size, "preprocessing": meta.get("preprocessing"),
                "architecture": meta.get("architecture"), "backend": backend.kind,
                "headstart_version": meta.get("headstart_version"), "input": meta.get("input"),
                "output": meta.get("output"), "provenance": meta.get("provenance", {}),
                "task": meta.get("task", "classify"),
                **({"detector": meta.get("detector"), "conf": backend.conf, "max_det": backend.max_det} if detector else {}),
                "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                           "max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms}}

    app.state.batcher, app.state.backend = batcher, backend
    return app
