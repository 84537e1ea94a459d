"""Data checks: duplicates and split leakage, class balance, resolution, colour, channel
statistics, separability of classes and distance from the pretraining domain.

Each ``check_*`` function takes measurements (not files) and returns a list of findings, so each can
be tested on its own; :func:`scan_images` makes the measurements, reading every image once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = [
    "ImageScan", "scan_images", "near_duplicate_pairs", "check_duplicates", "check_class_balance", "check_resolution",
    "check_grayscale", "check_channel_stats", "check_separability", "check_domain",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
PHASH_NEAR = 4
"""Hamming distance (of 64 bits) at or under which two perceptual hashes may be the same picture
(re-encoded, resized). A hash match alone is not enough: see :data:`THUMB_NEAR`."""
THUMB_NEAR = 0.95
"""Correlation of 8x8 grayscale thumbnails at or over which a hash match is confirmed. Chosen on
the design datasets of benchmarks/doctor_precision.py: resized JPEG copies of 32-40 px images
correlate at 0.94-1.0 with their originals, while the distinct images that share a hash mostly sit
below 0.9. (Pretrained-feature cosine was measured as the confirmation too and rejected: a resized
JPEG copy of a 32 px image sits at cosine 0.45-0.96 from its original, as far as distinct images.)"""
LEAK_HIGH_PAIRS = 5
"""Near (not exact) pairs across splits from which split-leakage is high rather than low: clean
datasets gave 0-1 such pairs on the design group (a few more on the held-out glyphs: same-font
renderings), planted leaks of 10 copies 9-10."""
NEAR_MIN_SIDE = 16
"""Images with a shorter side under this many pixels get exact (pixel-digest) duplicates only: at 8x8
a resized JPEG copy differs from its original as much as two distinct images of a class do (sklearn
digits), so a near-duplicate claim there would be a guess."""


@dataclass
class ImageScan:
    """Per-image measurements, in the order of ``paths``."""

    paths: list[Path]
    sizes: np.ndarray  # (N, 2) width, height
    gray: np.ndarray  # (N,) bool: R == G == B everywhere (to within 2 levels)
    means: np.ndarray  # (N, 3) channel means in [0, 1]
    stds: np.ndarray  # (N, 3)
    phash: np.ndarray  # (N,) uint64 perceptual hash
    digest: list[str]  # md5 of the decoded pixels: equal digests are exact duplicates
    thumbs: np.ndarray | None = None  # (N, 64) 8x8 grayscale thumbnails, zero mean, unit norm


def scan_images(paths: Sequence[Path]) -> ImageScan:
    """Decode each image once (headstart's RGB decoding) and measure it."""
    import imagehash

    from headstart.data.decode import open_rgb

    sizes, gray, means, stds, hashes, digests, thumbs = [], [], [], [], [], [], []
    for path in paths:
        image = open_rgb(path)
        sizes.append(image.size)
        pixels = np.asarray(image)
        digests.append(hashlib.md5(pixels.tobytes() + str(pixels.shape).encode()).hexdigest())
        small = np.asarray(image.resize((64, 64)), dtype=np.float32) / 255.0 if max(image.size) > 64 else pixels / 255.0
        gray.append(bool(np.abs(small[..., 0] - small[..., 1]).max() <= 2 / 255 and np.abs(small[..., 1] - small[..., 2]).max() <= 2 / 255))
        means.append(small.reshape(-1, 3).mean(0))
        stds.append(small.reshape(-1, 3).std(0))
        bits = imagehash.phash(image).hash.flatten()
        hashes.append(int("".join("1" if b else "0" for b in bits), 2))
        thumbs.append(_thumbnail(image))
    return ImageScan(
        list(map(Path, paths)), np.array(sizes).reshape(-1, 2), np.array(gray, dtype=bool),
        np.array(means).reshape(-1, 3), np.array(stds).reshape(-1, 3), np.array(hashes, dtype=np.uint64), digests,
        np.array(thumbs, dtype=np.float32).reshape(-1, 64),
    )


def _thumbnail(image) -> np.ndarray:
    from PIL import Image

    small = image.convert("L").resize((8, 8), Image.Resampling.BOX if min(image.size) >= 8 else Image.Resampling.BILINEAR)
    v = np.asarray(small, dtype=np.float32).ravel()
    v = v - v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def _hamming_pairs(hashes: np.ndarray, limit: int, chunk: int = 1024) -> list[tuple[int, int]]:
    # pairwise popcount on 64-bit ints, chunked so memory stays O(chunk * N)
    pairs = []
    as_bytes = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)
    bits = np.unpackbits(as_bytes, axis=1).astype(np.uint8)
    for start in range(0, len(bits), chunk):
        block = bits[start:start + chunk]
        dist = (block[:, None, :] != bits[None, :, :]).sum(-1)
        for i, j in zip(*np.nonzero(dist <= limit)):
            if start + i < j:
                pairs.append((start + int(i), int(j)))
    return pairs


def near_duplicate_pairs(phash: np.ndarray, thumbs: np.ndarray, sizes: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i < j) whose perceptual hashes are within :data:`PHASH_NEAR` bits *and* whose 8x8
    thumbnails correlate at :data:`THUMB_NEAR` or more; images under :data:`NEAR_MIN_SIDE` px take
    no part (exact copies are found by digest)."""
    big = np.flatnonzero(np.asarray(sizes).reshape(-1, 2).min(1) >= NEAR_MIN_SIDE)
    if len(big) < 2:
        return []
    thumbs = np.asarray(thumbs, dtype=np.float32)
    pairs = []
    for i, j in _hamming_pairs(np.asarray(phash)[big], PHASH_NEAR):
        a, b = int(big[i]), int(big[j])
        if float(thumbs[a] @ thumbs[b]) >= THUMB_NEAR:
            pairs.append((a, b))
    return pairs


def check_duplicates(
    scan: ImageScan, splits: Sequence[str], labels: Sequence[int], classes: Sequence[str], root: Path | None = None,
) -> list[Finding]:
    """Exact duplicates (same pixels), near-duplicates (:func:`near_duplicate_pairs`: hash and
    thumbnail agree), and the share of them that cross splits (leakage)."""
    exact: set[tuple[int, int]] = set()
    by_digest: dict[str, list[int]] = {}
    for i, d in enumerate(scan.digest):
        by_digest.setdefault(d, []).append(i)
    for group in by_digest.values():
        exact.update((a, b) for k, a in enumerate(group) for b in group[k + 1:])
    near = set(near_duplicate_pairs(scan.phash, scan.thumbs, scan.sizes)) if scan.thumbs is not None else set()
    near -= exact
    rel = (lambda p: str(p.relative_to(root)) if root and p.is_relative_to(root) else str(p))
    out = []
    pairs = sorted(exact | near)
    # train/eval copies inflate the scores; val/test copies make the two evaluations one
    leaked = [(a, b) for a, b in pairs if splits[a] != splits[b]]
    if leaked:
        shown = "; ".join(f"{rel(scan.paths[a])} ({splits[a]}) = {rel(scan.paths[b])} ({splits[b]})" for a, b in leaked[:5])
        eval_files = {i for pair in leaked for i in pair if splits[i] != "train"}
        n_exact = sum(1 for p in leaked if p in exact)
        # exact copies are certain; a few near pairs may be distinct but look-alike pictures
        high = n_exact > 0 or len(leaked) >= LEAK_HIGH_PAIRS
        doubt = "" if high else (f" Only {len(leaked)} near pair(s): check them by eye, they may be distinct look-alike"
                                 " pictures, and so few barely move the scores.")
        out.append(Finding(
            "split-leakage", "high" if high else "low",
            f"{len(leaked)} duplicate pair(s) across splits ({n_exact} exact; {len(eval_files)} val/test images have a"
            f" copy in another split){', so the val/test scores are optimistic' if high else ''}. E.g. {shown}.{doubt}",
            "Remove the copies from val/test (or from train) so that each picture sits in one split, then re-run"
            " `headstart fit` (a fresh split, without --resume).",
            {"pairs": [[rel(scan.paths[a]), rel(scan.paths[b])] for a, b in leaked]},
        ))
    conflicting = [(a, b) for a, b in pairs if labels[a] != labels[b]]
    if conflicting:
        shown = "; ".join(f"{rel(scan.paths[a])} ({classes[labels[a]]}) vs {rel(scan.paths[b])} ({classes[labels[b]]})" for a, b in conflicting[:5])
        out.append(Finding(
            "duplicates-conflicting-labels", "medium",
            f"{len(conflicting)} pair(s) of (near-)identical images carry different labels: {shown}.",
            "Decide on one label per picture and delete or move the other copy.",
            {"pairs": [[rel(scan.paths[a]), rel(scan.paths[b])] for a, b in conflicting]},
        ))
    same_split = [(a, b) for a, b in pairs if splits[a] == splits[b] and labels[a] == labels[b]]
    if same_split:
        n_exact = sum(1 for p in same_split if p in exact)
        out.append(Finding(
            "duplicates", "low",
            f"{len(same_split)} duplicate pair(s) within a split ({n_exact} exact, {len(same_split) - n_exact} near), e.g."
            f" {rel(scan.paths[same_split[0][0]])} = {rel(scan.paths[same_split[0][1]])}. Copies weigh those pictures"
            " more in training and in the scores.",
            "Delete the extra copies (listed in `headstart doctor DATA --format json`).",
            {"pairs": [[rel(scan.paths[a]), rel(scan.paths[b])] for a, b in same_split]},
        ))
    return out


def check_class_balance(counts: dict[str, int], *, tiny: int = 10, ratio_high: float = 10.0, ratio_medium: float = 3.0) -> list[Finding]:
    """Imbalance (largest / smallest class in train) and classes with too few training images."""
    out = []
    nonzero = {c: n for c, n in counts.items() if n > 0}
    if len(nonzero) >= 2:
        big, small = max(nonzero, key=nonzero.get), min(nonzero, key=nonzero.get)
        ratio = nonzero[big] / nonzero[small]
        if ratio >= ratio_medium:
            out.append(Finding(
                "class-imbalance", "high" if ratio >= ratio_high else "medium",
                f"The largest class {big!r} has {nonzero[big]} training images, {ratio:.1f}x the smallest {small!r}"
                f" ({nonzero[small]}); plain accuracy will favour the large classes.",
                "Set train.class_weights=balanced (`headstart fit DATA --class-weights balanced`) and read balanced"
                " accuracy / macro F1; collect more images of the small classes if you can.",
                {"counts": counts, "ratio": ratio},
            ))
    few = {c: n for c, n in counts.items() if n < tiny}
    if few:
        out.append(Finding(
            "tiny-classes", "high" if any(n < 3 for n in few.values()) else "medium",
            f"{len(few)} class(es) have fewer than {tiny} training images: "
            + ", ".join(f"{c!r}: {n}" for c, n in sorted(few.items(), key=lambda kv: kv[1])[:10]) + ".",
            "Collect at least 10-20 images per class, or merge these classes; meanwhile keep the backbone frozen"
            " (`--strategy linear-probe`).",
            {"classes": few},
        ))
    return out


def check_resolution(sizes: np.ndarray, input_size: int, *, low: float = 0.5, very_low: float = 0.25) -> list[Finding]:
    """Images whose shorter side is far below the model's input size get upsampled: blurry inputs."""
    if len(sizes) == 0:
        return []
    short = np.median(sizes.min(1))
    frac = float(short / input_size)
    if frac >= low:
        return []
    return [Finding(
        "low-resolution", "high" if frac < very_low else "medium",
        f"The median shorter side is {short:.0f}px, {frac:.0%} of the model's {input_size}px input: images are"
        " upsampled into blurry inputs whose scale is unlike the pretraining images.",
        f"Use a smaller input size (e.g. `--image-size {max(32, int(round(short / 32) * 32) or 32)}`) or a model"
        " pretrained at low resolution; keep the originals at full resolution if you have them.",
        {"median_short_side": float(short), "input_size": input_size},
    )]


def check_grayscale(gray: np.ndarray, *, model_channels: int = 3) -> list[Finding]:
    """Grayscale-only data fed to an RGB model: colour filters are wasted and statistics differ."""
    if len(gray) == 0 or model_channels != 3:
        return []
    frac = float(np.mean(gray))
    if frac < 0.98:
        return []
    return [Finding(
        "grayscale-only", "medium",
        f"{frac:.0%} of the images are grayscale, while the model was pretrained on RGB photos: the colour-sensitive"
        " filters see R=G=B everywhere.",
        "Keep the grayscale images replicated to 3 channels (headstart does this), turn off colour augmentation"
        " (augment.brightness=0), and prefer fine-tuning the early layers (`--strategy lp-ft`) so they adapt.",
        {"grayscale_fraction": frac},
    )]


def check_channel_stats(means: np.ndarray, stds: np.ndarray, *, z_limit: float = 2.0, std_floor: float = 0.05) -> list[Finding]:
    """Dataset channel statistics far from ImageNet's (very dark, very bright, washed out, tinted)."""
    if len(means) == 0:
        return []
    mean, std = means.mean(0), stds.mean(0)
    z = (mean - IMAGENET_MEAN) / IMAGENET_STD
    problems = []
    if np.abs(z).max() > z_limit:
        problems.append(f"channel means {np.round(mean, 3).tolist()} are {np.abs(z).max():.1f} ImageNet stds from"
                        f" ImageNet's {IMAGENET_MEAN.tolist()}")
    if std.min() < std_floor:
        problems.append(f"per-image contrast (std) is only {np.round(std, 3).tolist()}")
    if not problems:
        return []
    return [Finding(
        "channel-statistics", "low",
        "Unusual pixel statistics: " + "; ".join(problems) + ". After the model's normalisation the inputs sit far"
        " from what the backbone saw in pretraining.",
        "Check the export (bit depth, scaling, colour order); fine-tune the whole model (`--strategy lp-ft`) so"
        " BatchNorm statistics adapt, or normalise contrast before training.",
        {"mean": mean.tolist(), "std": std.tolist()},
    )]


def check_separability(
    pred_probs: np.ndarray, labels: np.ndarray, classes: Sequence[str], *, rate: float = 0.2,
    skip: Sequence[tuple[str, str]] = (),
) -> list[Finding]:
    """Pairs of classes a cross-validated linear probe on pretrained features confuses often
    (except the pairs in ``skip``, already reported as confusable classes by the label check)."""
    skipped = {frozenset(p) for p in skip}
    from sklearn.metrics import confusion_matrix

    k = len(classes)
    cm = confusion_matrix(labels, pred_probs.argmax(1), labels=np.arange(k))
    support = cm.sum(1)
    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            n = support[i] + support[j]
            if n and (cm[i, j] + cm[j, i]) / n >= rate and frozenset((classes[i], classes[j])) not in skipped:
                pairs.append((classes[i], classes[j], float((cm[i, j] + cm[j, i]) / n)))
    if not pairs:
        return []
    pairs.sort(key=lambda p: -p[2])
    return [Finding(
        "confused-classes", "medium",
        "A cross-validated linear probe on pretrained features confuses "
        + ", ".join(f"{a!r}/{b!r} ({r:.0%} of their images)" for a, b, r in pairs[:8])
        + ": the pretrained features do not separate them.",
        "Fine-tune the backbone rather than only the head (`--strategy lp-ft`), use a larger input size or a larger"
        " model; check that these classes are visually distinguishable and consistently labelled.",
        {"pairs": [[a, b, r] for a, b, r in pairs]},
    )]


def check_domain(balanced_accuracy: float, num_classes: int, *, low: float = 0.5, very_low: float = 0.25) -> list[Finding]:
    """How well a linear probe on pretrained features does, above chance: on data close to the
    pretraining domain it is high (typically > 0.8 of the way from chance to perfect on natural photos)."""
    chance = 1 / num_classes
    skill = (balanced_accuracy - chance) / (1 - chance)
    if skill >= low:
        return []
    return [Finding(
        "far-from-pretraining-domain", "high" if skill < very_low else "medium",
        f"A cross-validated linear probe on pretrained features reaches {balanced_accuracy:.1%} balanced accuracy"
        f" (chance {chance:.1%}; {skill:.0%} of the way from chance to perfect; on natural photos this is typically"
        " above 80%): the data are far from the pretraining domain.",
        "Fine-tune more of the network (`--strategy full`, or lp-ft with more epochs), use a higher input resolution"
        " (`--image-size`), or try a backbone pretrained closer to your domain (`headstart weights list`).",
        {"probe_balanced_accuracy": balanced_accuracy, "skill": skill},
    )]
