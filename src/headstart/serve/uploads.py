"""What clients send, bounded before it costs memory or CPU.

- :class:`BodySizeLimit`: ASGI middleware refusing request bodies over ``max_bytes`` with 413,
  checked on ``Content-Length`` and again while reading (chunked uploads declare no length).
- :func:`decode_upload`: bytes -> upright RGB image, with the pixel count read from the header and
  checked *before* decoding (a 100 KB PNG can declare 10 gigapixels: a decompression bomb), corrupt
  or non-image data answered 422, never an exception out of the server.
"""

from __future__ import annotations

import io
import json
import warnings

__all__ = ["UploadError", "BodySizeLimit", "decode_upload", "decode_upload_sized"]


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _too_large(max_bytes: int) -> bytes:
    return json.dumps({"detail": f"The request body is larger than the server's limit of {max_bytes} bytes"
                       f" ({max_bytes / 1e6:.1f} MB). Send a smaller image (resize it first), or start the server"
                       " with a larger --max-upload-mb."}).encode()


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def _reject(self, send) -> None:
        body = _too_large(self.max_bytes)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        chunks, total, more, exceeded = [], 0, True, False
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            exceeded = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            more = message.get("more_body", False)
            if total > self.max_bytes:
                exceeded = True
            if exceeded:
                # Drain (bounded) so the client finishes sending and reads the 413 instead of a reset.
                if total > 8 * self.max_bytes + (1 << 20):
                    break
                continue
            chunks.append(body)
        if exceeded:
            return await self._reject(send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def decode_upload(data: bytes, *, max_pixels: int, draft: int | None = None):
    """Bytes of an image file -> upright 8-bit RGB Pillow image (as :func:`headstart.data.decode.open_rgb`)."""
    return decode_upload_sized(data, max_pixels=max_pixels, draft=draft)[0]


def decode_upload_sized(data: bytes, *, max_pixels: int, draft: int | None = None):
    """``(image, (width, height))``: :func:`decode_upload` and the upright size of the full image
    (a JPEG decoded at a draft size is smaller than the file; boxes are given in the file's pixels)."""
    from PIL import Image, ImageOps

    from headstart.data.decode import _DECODE_ERRORS, to_rgb

    if not data:
        raise UploadError(422, "The uploaded image is empty (0 bytes). Send the bytes of a JPEG, PNG, WebP, ... file.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise UploadError(413, f"The image declares too many pixels ({exc}); the server's limit is {max_pixels}"
                              " pixels (a guard against decompression bombs). Resize it before sending.") from None
        except _DECODE_ERRORS:
            raise UploadError(422, "The upload is not an image Pillow can read (JPEG, PNG, WebP, GIF, BMP, TIFF).") from None
        width, height = image.size
        # Our own limit, from the header, before any pixel is decoded (Pillow's global
        # MAX_IMAGE_PIXELS is process-wide and only warns below twice its value).
        if width * height > max_pixels:
            raise UploadError(413, f"The image is {width}x{height} = {width * height} pixels, more than the server's"
                              f" limit of {max_pixels} (a guard against decompression bombs). Resize it before"
                              " sending, or start the server with a larger --max-pixels.")
        try:
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", (draft, draft))  # as open_rgb(draft=...) does in predict
            image.load()
            drafted = image.size
            image = ImageOps.exif_transpose(image) or image
            upright = (height, width) if image.size != drafted else (width, height)
            return to_rgb(image), upright
        except _DECODE_ERRORS as exc:
            raise UploadError(422, f"The image is corrupt or truncated and cannot be decoded ({exc}).") from None
