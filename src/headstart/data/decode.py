"""Turn any image file a user is likely to have into the 8-bit RGB picture a pretrained model expects.

Pretrained backbones were trained on 8-bit sRGB photos, upright. Files in the wild are not: phones
store pictures sideways with an EXIF orientation tag, PNGs carry palettes and alpha channels, print
workflows produce CMYK, microscopes and scanners write 16-bit grayscale. :func:`open_rgb` is the one
place where all of these become the same thing, so that training, evaluation and prediction see
identical pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from headstart.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "is_image_file", "open_rgb", "image_size", "to_rgb", "check_image"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""Lower-case suffixes of the files treated as images (matched case-insensitively)."""

# Errors Pillow raises for files it cannot decode: corrupt headers surface from some plugins as
# SyntaxError, IndexError or KeyError; DecompressionBombError derives from Exception directly.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)

# EXIF orientations 5-8 rotate by 90 or 270 degrees, which swaps width and height.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112

# Transparent pixels are composited on white: it is what image viewers and browsers show behind
# transparent product photos, icons and line art, so it is what the person labelling the images saw.
# Black would turn dark line art on a transparent background into an all-black image.
_BACKGROUND = (255, 255, 255)


def is_image_file(path: str | Path) -> bool:
    """True for a non-hidden file whose suffix is one of :data:`IMAGE_EXTENSIONS`."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        return f"too many pixels for Pillow's decompression-bomb limit ({text})"
    if "truncated" in text.lower():
        return f"truncated file ({text})"
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (Pillow cannot identify the format)"
    return text


def _scale_to_uint8(array: np.ndarray, bits: int | None) -> np.ndarray:
    """Map high-bit-depth pixel values onto 0..255 by their value range, not by clipping.

    Clipping a 16-bit image at 255 turns almost every pixel white; dividing by the range of the
    storage type (65535 for 16-bit) keeps the picture as the file's author meant it, the way
    ``skimage.img_as_ubyte`` does.
    """
    array = array.astype(np.float64)
    if bits is not None:
        scaled = array * (255.0 / (2**bits - 1))
    else:
        # 32-bit integer ("I") or float ("F") images carry no declared range: infer it.
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if low >= 0 and high <= 1.0 and array.dtype.kind == "f":
            scaled = array * 255.0
        elif low >= 0 and high <= 255:
            scaled = array
        elif low >= 0 and high <= 65535:
            scaled = array * (255.0 / 65535.0)
        else:
            scaled = (array - low) * (255.0 / max(high - low, 1e-12))
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an already-opened (and oriented) Pillow image of any mode to 8-bit RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        bits = 16 if mode.startswith("I;16") else None
        gray = _scale_to_uint8(np.asarray(image), bits)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if "transparency" in image.info and mode in ("P", "L", "RGB"):
        # A palette (or a colour key) may mark pixels as transparent; the alpha only becomes
        # visible after conversion to RGBA.
        image = image.convert("RGBA")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # CMYK, YCbCr, LAB, HSV, L and 1 all have a direct conversion in Pillow.
    return image.convert("RGB")


def _decode(path: Path, draft: int | None) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow warns on odd-but-readable files (large images, palette transparency given as
        # bytes); the image is still usable, and a warning per file would flood the output.
        warnings.simplefilter("ignore")
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", (draft, draft))
            image.load()
            image = ImageOps.exif_transpose(image) or image
            rgb = to_rgb(image)
            if rgb is image:
                rgb = image.copy()  # detach from the file handle closed by the with block
            rgb.load()
    return rgb


def _header_size(path: Path) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
            except Exception:  # a corrupt EXIF block does not make the pixels unreadable
                orientation = 1
    if orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def _failure(path: Path, exc: BaseException) -> str:
    """Short reason for a file that cannot be read (the caller names the file)."""
    if isinstance(exc, FileNotFoundError):
        return "does not exist (it was moved or deleted)"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image file"
    return _describe_error(exc)


def open_rgb(path: str | Path, draft: int | None = None) -> Image.Image:
    """Decode ``path`` fully into an upright 8-bit RGB :class:`PIL.Image.Image`.

    Applies the EXIF orientation, takes the first frame of animated files, composites transparency
    on white, converts palette/CMYK/grayscale and scales 16-bit images to 8 bits. The file is fully
    decoded (``load()``), so truncated files fail here rather than half-way through training.

    ``draft``: for JPEGs, let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) as long as both
    sides stay at least ``draft`` pixels. Decoding a 12-megapixel photo at 1/8 scale is many times
    faster, and the caller resizes further anyway; pass about twice the target size so that the
    final antialiased resize, not libjpeg's DCT scaling, determines quality.

    Raises :class:`~headstart.errors.DataError` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        return _decode(path, draft)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise DataError(f"The image {str(path)!r} {_failure(path, exc)}.") from None
    except _DECODE_ERRORS as exc:
        raise DataError(
            f"Cannot read the image {str(path)!r}: {_failure(path, exc)}. Re-export or remove the"
            " file, or leave data.strict off to skip unreadable images."
        ) from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the upright image, from the file header only (no pixel decoding).

    Honours the EXIF orientation, so a portrait photo stored sideways reports a portrait size.
    Raises :class:`~headstart.errors.DataError` naming the file when the header is unreadable.
    """
    path = Path(path)
    try:
        return _header_size(path)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise DataError(f"The image {str(path)!r} {_failure(path, exc)}.") from None
    except _DECODE_ERRORS as exc:
        raise DataError(f"Cannot read the image {str(path)!r}: {_failure(path, exc)}.") from None


def check_image(path: str | Path) -> tuple[tuple[int, int] | None, str | None]:
    """Decode ``path`` completely but cheaply; return ``((width, height), None)`` or ``(None, reason)``.

    Why a full decode: ``Image.verify()`` only checks headers and chunk checksums, and it misses
    truncated JPEGs -- the most common damage (an interrupted download or copy) -- which then crash
    training epochs later. ``load()`` catches them. JPEGs are decoded in libjpeg's draft mode at
    1/8 scale: every byte of the compressed stream is still read (so truncation is detected), but
    the inverse DCT and colour conversion work shrink about 64-fold, making the check several
    times faster than a full-resolution decode. The size returned is the full, upright size.
    """
    path = Path(path)
    try:
        size = _header_size(path)
        _decode(path, draft=1)
    except _DECODE_ERRORS as exc:  # FileNotFoundError is an OSError
        return None, _failure(path, exc)
    return size, None
