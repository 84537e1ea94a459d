"""A detection dataset built from real data: glyphs composited onto real photos, with exact boxes.

No installable package carries COCO detector weights or an annotated detection set, so the
detection benchmarks, the demo and the integration tests use scenes built here. Backgrounds are
random crops (rescaled, sometimes mirrored) of scikit-image's bundled sample photos (CC0, public
domain or "no known copyright restrictions", as each one's skimage.data docstring says; see
``PHOTO_LICENCES``). Objects are digits rendered with Debian's DejaVu fonts (package
``fonts-dejavu-core``) in varied faces, weights, colours, sizes, aspect ratios, slants, rotations
and blurs, alpha-composited with their anti-aliased masks.

* Train and val backgrounds come from one set of photos, test backgrounds from a disjoint set
  (``TRAIN_PHOTOS``, ``TEST_PHOTOS``), so a test score measures transfer to unseen scenes, not
  memory of the backgrounds.
* Boxes are exact: an object's box is the tight box of the pixels where it contributes at least
  ``MIN_ALPHA``/255 opacity to the image (mask values below that are zeroed before compositing).
  Every pixel that differs from the background lies in some box; an object partly hidden by a
  later one or cut by the image edge gets the box of what is visible. PNG keeps this exact; JPEG
  (the default, quality 90) then smears edges by a pixel or so, as in any photo.
* 1 to ``max_objects`` objects an image, classes drawn round-robin from shuffled cycles (even
  counts), sizes log-uniform from small to large in COCO's sense (box area < 32², < 96², larger),
  a placement rejected when its box has IoU > ``max_iou`` with a box already there or when it
  would hide more than ``max_occlusion`` of an earlier object; about ``negative_fraction`` of
  the images have no object.
* Deterministic: the same arguments give byte-identical JSON (and images, with the same Pillow
  and libjpeg).

Layout written (COCO): ``annotations/instances_{train,val,test}.json`` and ``train/``, ``val/``,
``test/`` image folders. Annotation ``area`` is the box area (w*h; there are no segmentations);
``bbox`` is ``[x, y, w, h]`` in pixels, whole numbers stored as floats. Each image record also
says which photo, crop and mirroring made its background (``background``), so the background can
be rebuilt with ``render_background``.

    python benchmarks/detection_data.py [--out runs/detection-data] [--n-train 400] [--n-val 100]
        [--n-test 200] [--image-size 320] [--seed 0] [--format jpg] [--results RESULTS.json]

Prints a summary (images, negatives, boxes per class, small/medium/large per split) and the time
taken. ``examples/make_detection.py`` uses ``make_dataset`` to write the small ``examples/glyphs``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# The six faces of Debian's fonts-dejavu-core (slanted and condensed variants come from the affine
# transform below, so fonts-dejavu-extra is not needed).
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
)
FONT_PACKAGE = "fonts-dejavu-core"

DIGIT_NAMES = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
               "8": "eight", "9": "nine"}
CLASSES = ("0", "1", "2", "3", "4")

# scikit-image's bundled photos (in the wheel, no download), each with the licence its
# skimage.data docstring states. Train/val and test sets are disjoint and each mixes colour and
# grey photos, a texture, a scene and a nearly plain background. Left out: photos whose docstring
# states no licence (page, moon, ...), 'text' (handwritten digits would be unlabelled objects) and
# drawings (horse, logo).
TRAIN_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "camera", "brick", "grass", "clock")
TEST_PHOTOS = ("rocket", "immunohistochemistry", "retina", "coins", "gravel", "cell")
PHOTO_LICENCES = {
    "astronaut": "public domain (NASA)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "hubble_deep_field": "public domain (NASA)",
    "camera": "CC0 (Lav Varshney)",
    "brick": "CC0 (CC0Textures)",
    "grass": "CC0 (DeviantArt, linolafett)",
    "clock": "public domain (Stefan van der Walt)",
    "rocket": "public domain (SpaceX)",
    "immunohistochemistry": "no known copyright restrictions (CMMI)",
    "retina": "CC0 1.0 (Wikimedia Commons)",
    "coins": "no known copyright restrictions (Brooklyn Museum)",
    "gravel": "CC0 (CC0Textures)",
    "cell": "CC0 (quantitative phase image, Müller et al. 2018)",
}

SPLITS = ("train", "val", "test")
MIN_ALPHA = 16  # mask values below this (of 255) are zeroed: nothing fainter reaches the image
SMALL, MEDIUM = 32**2, 96**2  # COCO's area ranges
CAP_HEIGHT = 0.73  # DejaVu digit height as a fraction of the font size in pixels
MIN_CONTRAST = 80.0  # luminance difference between a glyph's fill and the background under it
IMAGE_NAME = re.compile(r"^\d{6}\.(jpg|png)$")


# --------------------------------------------------------------------------------------------------
# Sources


def check_fonts(fonts: Sequence[str] = FONTS, font_dir: Path = FONT_DIR) -> list[Path]:
    """The font files, or FileNotFoundError naming the first missing one and the package to install."""
    paths = [Path(font_dir) / name for name in fonts]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"DejaVu font not found: {path}. Install Debian's DejaVu fonts: apt-get install {FONT_PACKAGE}"
            )
    return paths


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as RGB uint8, from the files bundled in the installed wheel."""
    import skimage.data

    try:
        array = np.asarray(getattr(skimage.data, name)())
    except Exception as exc:  # a photo that would need a download, or a name skimage lacks
        raise RuntimeError(f"scikit-image photo {name!r} is not available offline: {exc}") from exc
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    array = np.ascontiguousarray(array[..., :3].astype(np.uint8))
    array.setflags(write=False)
    return array


def render_background(photo: np.ndarray, crop: Sequence[int], flip: bool, size: int) -> np.ndarray:
    """The square crop ``[x, y, side]`` of ``photo``, mirrored if ``flip``, resized to ``size`` (RGB uint8)."""
    x, y, side = (int(v) for v in crop)
    image = Image.fromarray(photo[y : y + side, x : x + side])
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))


@functools.lru_cache(maxsize=1024)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


# --------------------------------------------------------------------------------------------------
# Glyphs


@dataclass(frozen=True)
class GlyphStyle:
    font: str  # path of the font file
    font_px: int
    stroke: int  # outline width in pixels (0: none)
    stretch: float  # horizontal scale
    shear: float  # horizontal shear (synthetic slant)
    angle: float  # rotation in degrees, anticlockwise
    blur: float  # Gaussian blur radius in pixels (0: none)


def render_glyph(glyph: str, style: GlyphStyle) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased masks of one glyph as float32 in [0, 1]: (fill, outer), outer = fill plus outline.

    Values below ``MIN_ALPHA``/255 are zeroed and both arrays are cropped to the tight box of the
    outer mask's non-zero pixels, so that box is exactly the glyph's extent.
    """
    font = _font(style.font, style.font_px)
    sw = style.stroke
    left, top, right, bottom = font.getbbox(glyph, stroke_width=sw)
    pad = 2 + sw
    size = (right - left + 2 * pad, bottom - top + 2 * pad)
    origin = (pad - left, pad - top)
    outer = Image.new("L", size, 0)
    ImageDraw.Draw(outer).text(origin, glyph, font=font, fill=255, stroke_width=sw, stroke_fill=255)
    if sw:
        fill = Image.new("L", size, 0)
        ImageDraw.Draw(fill).text(origin, glyph, font=font, fill=255)
    else:
        fill = outer

    # One affine resampling: stretch, then shear, then rotate, about the centre.
    theta = math.radians(style.angle)
    rotate = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])  # y points down
    forward = rotate @ np.array([[1.0, style.shear], [0.0, 1.0]]) @ np.diag([style.stretch, 1.0])
    w, h = size
    corners = (np.array([[0, 0], [w, 0], [0, h], [w, h]], float) - [w / 2, h / 2]) @ forward.T
    margin = 2 + math.ceil(3 * style.blur)
    out_w = math.ceil(np.ptp(corners[:, 0])) + 2 * margin
    out_h = math.ceil(np.ptp(corners[:, 1])) + 2 * margin
    inverse = np.linalg.inv(forward)
    offset = np.array([w / 2, h / 2]) - inverse @ np.array([out_w / 2, out_h / 2])
    coeffs = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])

    masks = []
    for mask in (fill, outer) if sw else (outer,):
        mask = mask.transform((out_w, out_h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
        if style.blur > 0:
            mask = mask.filter(ImageFilter.GaussianBlur(style.blur))
        array = np.asarray(mask).copy()
        array[array < MIN_ALPHA] = 0
        masks.append(array.astype(np.float32) / 255.0)
    outer_a = masks[-1]
    fill_a = np.minimum(masks[0], outer_a)
    rows, cols = np.nonzero(outer_a)
    if rows.size == 0:
        raise ValueError(f"glyph {glyph!r} rendered empty with {style}")
    box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return fill_a[box], outer_a[box]


def _sample_style(rng: np.random.Generator, fonts: Sequence[Path], height: float) -> GlyphStyle:
    font_px = max(6, round(height / CAP_HEIGHT))
    stroke = max(1, round(font_px * rng.uniform(0.03, 0.07))) if rng.random() < 0.3 else 0
    return GlyphStyle(
        font=str(fonts[rng.integers(len(fonts))]),
        font_px=font_px,
        stroke=stroke,
        stretch=float(np.exp(rng.uniform(-0.2, 0.2))),
        shear=float(rng.uniform(-0.3, 0.3)) if rng.random() < 0.3 else 0.0,
        angle=float(np.clip(rng.normal(0.0, 12.0), -30.0, 30.0)),
        blur=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.25 else 0.0,
    )


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _pick_colours(rng: np.random.Generator, background_lum: float, stroke: bool) -> tuple[np.ndarray, np.ndarray]:
    """A random fill colour whose luminance differs from the background's by >= MIN_CONTRAST, and an
    outline colour (black or white, whichever is further from the fill)."""
    for _ in range(20):
        fill = rng.integers(0, 256, size=3).astype(np.float32)
        if abs(float(_luminance(fill)) - background_lum) >= MIN_CONTRAST:
            break
    else:
        fill = np.full(3, 0.0 if background_lum >= 128 else 255.0, np.float32)
    if not stroke:
        return fill, fill
    outline = np.full(3, 0.0 if _luminance(fill) >= 128 else 255.0, np.float32)
    return fill, outline


# --------------------------------------------------------------------------------------------------
# Scenes


def _tight_box(alpha: np.ndarray, x0: int = 0, y0: int = 0) -> tuple[int, int, int, int] | None:
    """[x, y, w, h] of the pixels with alpha >= MIN_ALPHA/255 (offset by x0, y0), or None."""
    rows, cols = np.nonzero(alpha * 255.0 >= MIN_ALPHA - 0.5)
    if rows.size == 0:
        return None
    x, y = int(cols.min()), int(rows.min())
    return x0 + x, y0 + y, int(cols.max()) + 1 - x, int(rows.max()) + 1 - y


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


@dataclass
class _Placed:
    category: int
    region: tuple[int, int, int, int]  # y0, x0, y1, x1 on the canvas
    visible: np.ndarray  # outer mask over region, times (1 - outer mask) of every object drawn later
    placed_mass: float
    box: tuple[int, int, int, int]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]):
    """Slices into a's and b's arrays of the intersection of regions a and b, or None."""
    y0, x0, y1, x1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if y0 >= y1 or x0 >= x1:
        return None
    return (np.s_[y0 - a[0] : y1 - a[0], x0 - a[1] : x1 - a[1]], np.s_[y0 - b[0] : y1 - b[0], x0 - b[1] : x1 - b[1]])


def compose_scene(
    rng: np.random.Generator,
    background: np.ndarray,
    categories: Sequence[int],
    classes: Sequence[str],
    fonts: Sequence[Path],
    *,
    min_size: float = 12.0,
    max_size_frac: float = 0.5,
    max_iou: float = 0.3,
    max_occlusion: float = 0.3,
    truncation_prob: float = 0.15,
    attempts: int = 30,
) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """Draw one glyph of each of ``categories`` (indices into ``classes``) onto ``background``.

    Returns the RGB uint8 image and ``(category, (x, y, w, h))`` for each object placed, in drawing
    order; an object that finds no acceptable place in ``attempts`` tries is left out.
    """
    size = background.shape[0]
    canvas = background.astype(np.float32)
    placed: list[_Placed] = []
    log_lo, log_hi = math.log(min_size), math.log(max(min_size, max_size_frac * size))
    for category in categories:
        height = math.exp(rng.uniform(log_lo, log_hi))
        for attempt in range(attempts):
            if attempt and attempt % 6 == 0:
                height = max(min_size, height * 0.75)  # crowded: try smaller
            style = _sample_style(rng, fonts, height)
            fill, outer = render_glyph(classes[category], style)
            gh, gw = outer.shape
            if gh > size or gw > size:
                height *= 0.75
                continue
            if rng.random() < truncation_prob:  # may run off an edge by up to 30 %
                x = int(rng.integers(-int(0.3 * gw), size - int(0.7 * gw) + 1))
                y = int(rng.integers(-int(0.3 * gh), size - int(0.7 * gh) + 1))
            else:
                x, y = int(rng.integers(0, size - gw + 1)), int(rng.integers(0, size - gh + 1))
            # The part of the masks inside the canvas.
            region = (max(0, y), max(0, x), min(size, y + gh), min(size, x + gw))
            src = np.s_[region[0] - y : region[2] - y, region[1] - x : region[3] - x]
            alpha, fill_alpha = outer[src], fill[src]
            mass = float(alpha.sum())
            if mass < 0.7 * float(outer.sum()):
                continue
            box = _tight_box(alpha, region[1], region[0])
            if box is None or any(_iou(box, p.box) > max_iou for p in placed):
                continue
            hidden = {}
            for k, p in enumerate(placed):
                overlap = _overlap(p.region, region)
                if overlap is not None:
                    visible = p.visible.copy()
                    visible[overlap[0]] *= 1.0 - alpha[overlap[1]]
                    hidden[k] = visible
            if any(float(v.sum()) < (1.0 - max_occlusion) * placed[k].placed_mass for k, v in hidden.items()):
                continue
            # Accepted: colours against what is under it now, then composite (outline, then fill).
            window = canvas[region[0] : region[2], region[1] : region[3]]
            under = float((_luminance(window) * alpha).sum() / mass)
            fill_colour, outline_colour = _pick_colours(rng, under, style.stroke > 0)
            window = window * (1.0 - alpha[..., None]) + outline_colour * alpha[..., None]
            window = window * (1.0 - fill_alpha[..., None]) + fill_colour * fill_alpha[..., None]
            canvas[region[0] : region[2], region[1] : region[3]] = window
            for k, visible in hidden.items():
                placed[k].visible = visible
                placed[k].box = _tight_box(visible, placed[k].region[1], placed[k].region[0])
            placed.append(_Placed(category, region, alpha.copy(), mass, box))
            break
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return image, [(p.category, p.box) for p in placed]


# --------------------------------------------------------------------------------------------------
# Dataset


def _cycled(rng: np.random.Generator, items: int, count: int) -> list[int]:
    """``count`` indices into ``items`` from consecutive shuffled cycles: every item equally often (+-1)."""
    out: list[int] = []
    while len(out) < count:
        out.extend(int(i) for i in rng.permutation(items))
    return out[:count]


def size_class(area: float) -> str:
    return "small" if area < SMALL else ("medium" if area < MEDIUM else "large")


def _write_coco(path: Path, coco: dict) -> None:
    """JSON with one record a line: readable, compact, byte-identical for the same content."""
    parts = []
    for key, value in coco.items():
        if isinstance(value, list):
            body = ",\n".join(json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f"{json.dumps(key)}: [\n{body}\n]" if value else f"{json.dumps(key)}: []")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    json.loads(text)  # well-formed
    path.write_text(text, encoding="utf-8")


def make_dataset(
    out: str | Path,
    *,
    n_train: int = 400,
    n_val: int = 100,
    n_test: int = 200,
    image_size: int = 320,
    seed: int = 0,
    classes: Sequence[str] = CLASSES,
    max_objects: int = 6,
    negative_fraction: float = 0.08,
    min_size: float = 12.0,
    max_size_frac: float = 0.5,
    max_iou: float = 0.3,
    max_occlusion: float = 0.3,
    image_format: str = "jpg",
    train_photos: Sequence[str] = TRAIN_PHOTOS,
    test_photos: Sequence[str] = TEST_PHOTOS,
    fonts: Sequence[str] = FONTS,
    font_dir: str | Path = FONT_DIR,
) -> dict:
    """Write a COCO-layout detection dataset into ``out`` and return its statistics.

    ``out/annotations/instances_{split}.json`` and ``out/{split}/NNNNNN.{jpg,png}`` for the splits
    train, val and test (``n_*`` images each; 0 writes an empty split). Train and val backgrounds
    are crops of ``train_photos``, test backgrounds of ``test_photos`` (must be disjoint). Each
    image gets 1..``max_objects`` glyphs of ``classes`` (glyph heights log-uniform in
    [``min_size``, ``max_size_frac`` * ``image_size``] before slant and rotation), except
    round(``negative_fraction`` * n) images a split with none. ``image_format``: "jpg" (quality 90)
    or "png" (lossless: pixels outside every box equal the background exactly). Earlier images of
    ours in ``out`` (six-digit names) are removed first; nothing else there is touched.

    Returns ``{"splits": {split: {...}}, "categories": [...], "seconds": float, ...}``.
    """
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', not {image_format!r}")
    if set(train_photos) & set(test_photos):
        raise ValueError(f"train and test photos overlap: {sorted(set(train_photos) & set(test_photos))}")
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct and non-empty: {classes!r}")
    if not 0.0 <= negative_fraction <= 1.0 or max_objects < 1 or image_size < 32:
        raise ValueError("need 0 <= negative_fraction <= 1, max_objects >= 1 and image_size >= 32")
    t0 = time.perf_counter()
    font_paths = check_fonts(fonts, Path(font_dir))
    out = Path(out)
    categories = [
        {"id": i + 1, "name": DIGIT_NAMES.get(g, g), "supercategory": "digit" if g.isdigit() else "glyph"}
        for i, g in enumerate(classes)
    ]
    counts = {"train": n_train, "val": n_val, "test": n_test}
    stats: dict = {"splits": {}, "categories": [c["name"] for c in categories]}
    for split_index, split in enumerate(SPLITS):
        n = int(counts[split])
        photos = tuple(test_photos if split == "test" else train_photos)
        rng = np.random.default_rng([seed, split_index])
        image_dir = out / split
        image_dir.mkdir(parents=True, exist_ok=True)
        for old in image_dir.iterdir():
            if IMAGE_NAME.match(old.name):
                old.unlink()
        (out / "annotations").mkdir(parents=True, exist_ok=True)

        n_neg = round(n * negative_fraction)
        negatives = set(int(i) for i in rng.choice(n, size=n_neg, replace=False)) if n_neg else set()
        n_objects = [0 if i in negatives else int(rng.integers(1, max_objects + 1)) for i in range(n)]
        plan = _cycled(rng, len(classes), sum(n_objects))
        photo_order = _cycled(rng, len(photos), n)

        images, annotations = [], []
        per_class = {c["name"]: 0 for c in categories}
        sizes = {"small": 0, "medium": 0, "large": 0}
        per_photo = {p: 0 for p in photos}
        start = 0
        for i in range(n):
            name = photos[photo_order[i]]
            photo = load_photo(name)
            ph, pw = photo.shape[:2]
            short = min(ph, pw)
            side = int(rng.integers(max(int(0.3 * short), min(short, image_size // 2)), short + 1))
            crop = [int(rng.integers(0, pw - side + 1)), int(rng.integers(0, ph - side + 1)), side]
            flip = bool(rng.random() < 0.5)
            background = render_background(photo, crop, flip, image_size)
            wanted = plan[start : start + n_objects[i]]
            start += n_objects[i]
            image, objects = compose_scene(
                rng, background, wanted, classes, font_paths, min_size=min_size, max_size_frac=max_size_frac,
                max_iou=max_iou, max_occlusion=max_occlusion,
            )
            file_name = f"{i + 1:06d}.{image_format}"
            pil = Image.fromarray(image)
            if image_format == "jpg":
                pil.save(image_dir / file_name, quality=90)
            else:
                pil.save(image_dir / file_name)
            image_id = i + 1
            images.append({"id": image_id, "file_name": file_name, "width": image_size, "height": image_size,
                           "license": 1, "background": {"photo": name, "crop": crop, "flip": flip}})
            per_photo[name] += 1
            for category, (x, y, w, h) in objects:
                area = float(w * h)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category + 1,
                                    "bbox": [float(x), float(y), float(w), float(h)], "area": area, "iscrowd": 0})
                per_class[categories[category]["name"]] += 1
                sizes[size_class(area)] += 1
        coco = {
            "info": {"description": f"headstart glyph detection ({split}): DejaVu digits composited onto "
                     "scikit-image sample photos; generated by benchmarks/detection_data.py",
                     "version": "1", "seed": seed, "split": split, "photos": list(photos)},
            "licenses": [{"id": 1, "name": "backgrounds: scikit-image sample photos (CC0 / public domain / no known "
                          "copyright restrictions); glyphs: DejaVu fonts (Bitstream Vera licence)",
                          "url": "https://scikit-image.org/docs/stable/api/skimage.data.html"}],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        _write_coco(out / "annotations" / f"instances_{split}.json", coco)
        stats["splits"][split] = {
            "images": n, "negatives": sum(1 for k in n_objects if k == 0),
            "images_without_boxes": sum(1 for im in images if not any(a["image_id"] == im["id"] for a in annotations)),
            "boxes": len(annotations), "boxes_planned": sum(n_objects), "per_class": per_class, "sizes": sizes,
            "photos": per_photo,
        }
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    return stats


def format_summary(stats: dict) -> str:
    names = stats["categories"]
    head = ["split", "images", "neg", "boxes", *names, "small", "medium", "large", "photos"]
    rows = [head]
    for split, s in stats["splits"].items():
        rows.append([split, s["images"], s["negatives"], s["boxes"], *(s["per_class"][c] for c in names),
                     s["sizes"]["small"], s["sizes"]["medium"], s["sizes"]["large"], ",".join(s["photos"])])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(r[:-1], widths)) + "  " + str(r[-1]) for r in rows]
    return "\n".join(lines) + f"\ngenerated in {stats['seconds']:.2f} s"


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/detection-data", help="dataset folder (default: %(default)s)")
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-objects", type=int, default=6)
    parser.add_argument("--negative-fraction", type=float, default=0.08)
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg")
    parser.add_argument("--results", help="also write the statistics and timing as JSON here")
    args = parser.parse_args(argv)
    try:
        stats = make_dataset(args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                             image_size=args.image_size, seed=args.seed, max_objects=args.max_objects,
                             negative_fraction=args.negative_fraction, image_format=args.format)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    print(f"wrote {args.out}")
    print(format_summary(stats))
    if args.results:
        record = {"args": vars(args), "machine": f"{platform.machine()}, {platform.python_version()}", **stats}
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(record, indent=2) + "\n")
    return stats


if __name__ == "__main__":
    main()
