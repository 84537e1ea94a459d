"""Every ``auto`` of a detection config, resolved from the data and the device in one place; fit
writes the result into config.yaml (so the file says what ran) and prints why.

The rules (constants below), and where they come from (BENCHMARKS.md, "Detection": chosen on
the val split of the glyphs-on-photos benchmark, 240 training images, FCOS on MobileNetV2):

* detector: ``fcos`` on a CPU (anchor-free: nothing to mis-size, and the cheapest of the three per
  step here), ``fasterrcnn`` on a GPU (what users ask for first). A YOLO detector only when
  Ultralytics is installed (the ``yolo`` extra) and the user imported its pretrained weights into the
  weights store (``headstart weights import yolo11n.pt --model yolo11n --trust-pickle``), with
  ``model.name`` left at auto and ``model.pretrained`` on: then the whole detector starts trained,
  not only its backbone. From its YAML alone it must not be chosen: yolo11n without pretrained
  weights scored 0.111 test mAP against FCOS on MobileNetV2's 0.628 at equal CPU time (BENCHMARKS.md,
  "YOLO from its YAML"). With several imported, the newest family (yolo11 before yolov8) at the
  smallest scale. The reason is printed either way.
* input size: the training images' median longer side, rounded up to a multiple of 32, or larger
  where the objects are small: the size at which the boxes' 25th-percentile shorter side is 24 px
  (three strides of the finest pyramid level), to the nearest multiple of 32; between 256 and 512
  on a CPU (640 on a GPU). On the benchmark (256 px images, a quarter of the boxes under 19 px)
  this gives 320 px, which beat the images' own 256 px by 4.0 points of test mAP at the same 18
  epochs, with the whole backbone training (0.697 against 0.657) and with its early stages frozen
  (0.690 against 0.650), for ~1.45x the compute per image. Only these two sizes were measured.
* batch size 4 on a CPU (more, smaller steps: better than 8 at the same epochs), 16 on a GPU;
  AdamW at 5e-4 x batch/4 for the pyramid and heads, the backbone at ``detect.backbone_lr_ratio``
  (0.3) of it once it trains. Measured at 12 epochs: val mAP 0.618 with these, 0.601 at 1e-3,
  0.593 training everything at one LR from the start (``full``), 0.551 with the first defaults
  (batch 8, 2e-4, ratio 0.1, ``medium`` augmentation). SGD (0.01, momentum 0.9, weight decay
  5e-4, same warmup and cosine) no longer collapses since the FCOS regression init, and tracked
  AdamW within a point of val mAP over 20 epochs without beating it: AdamW stays.
* epochs: about 3,360 training images seen in all (14 epochs of 240 images), at least 8 and at most
  60 epochs, 30 % of them (at least one) on the heads alone (``head-ft``: 4 + 10 on the
  benchmark; with ``--epochs N`` given, N through the backbone after a fifth of N on the heads).
  With the larger input size above and channels_last on the CPU, 14 epochs is what fits in the
  plain torchvision loop's CPU time (730 against 768 CPU s, test mAP 0.682 against 0.613);
  18 epochs scored 0.696 for 1,070 CPU s, 12 (3 + 9) 0.665 for 627. The earlier rules: 12 epochs
  at 256 px left val mAP still rising, then 18 at 256 px (0.657).
* frozen early stages (``detect.frozen_stride`` 4): the backbone's stem and its stride-2 and
  stride-4 stages stay frozen while the rest trains (torchvision's ``trainable_backbone_layers=3``
  by stride): ~10 % less CPU per epoch here, for 0.7 points of test mAP at equal epochs (0.690
  against 0.697 at 18 epochs), which the CPU budget buys back as epochs.
* a moving average of the weights (``train.ema_decay`` 0.999 with timm's warm-up, the average is
  validated, kept as the best and saved): above the live weights by 1-12 points of val mAP from
  the first fine-tuning epoch to the last few, level at the end of the cosine schedule; so early
  stopping and a schedule cut short keep a better model.
* augmentation: ``light`` (flips, scale and shift jitter); ``medium`` and ``strong`` are there to
  choose, not measured better at this length.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from headstart.config import FitConfig

__all__ = ["resolve_choices", "auto_detector", "auto_image_size", "yolo_candidate"]

DETECTOR_NAMES = ("fasterrcnn", "fcos", "retinanet")  # torchvision's (models.DETECTORS, without importing torch)
TARGET_IMAGES = 3360
MIN_EPOCHS, MAX_EPOCHS = 8, 60
# the boxes' 25th-percentile shorter side is brought up to three strides of the finest pyramid level
SMALL_OBJECT_PX = 24
HEAD_FRACTION = 0.3  # of the epochs chosen here; with --epochs given, a fifth of them is added on the heads
HEAD_FRACTION_OF_GIVEN = 0.2
EMA_DECAY = 0.999


# the order in which `detector: auto` looks for imported YOLO weights: newest family, smallest scale first
YOLO_PREFERENCE = tuple(f"{family}{scale}" for family in ("yolo11", "yolov8") for scale in "nsmlx")


def yolo_candidate(cfg: FitConfig | None, store_root=None) -> tuple[str | None, str]:
    """The YOLO detector ``detector: auto`` may choose for ``cfg`` (None: none) and why, without
    importing Ultralytics: it must be installed, and pretrained weights for the detector must be in
    the weights store (converted by ``headstart weights import``)."""
    import importlib.util

    from headstart.tasks.detection.yolo.weights import find_yolo_weights

    if cfg is None:
        return None, "YOLO not considered"
    if cfg.model.name != "auto":
        return None, f"YOLO not considered: model.name is the backbone {cfg.model.name!r}"
    if not cfg.model.pretrained:
        return None, "YOLO not considered: model.pretrained is off (from its YAML alone YOLO loses on small data)"
    if importlib.util.find_spec("ultralytics") is None:
        return None, "YOLO not considered: Ultralytics (the yolo extra, AGPL-3.0) is not installed"
    for name in YOLO_PREFERENCE:
        if find_yolo_weights(name, store_root=store_root) is not None:
            return name, f"{name} (Ultralytics is installed and its pretrained weights are in the weights store)"
    return None, (
        "YOLO not considered: no pretrained YOLO weights in the weights store (from its YAML alone yolo11n"
        " scored 0.111 test mAP against 0.628 for FCOS on MobileNetV2, BENCHMARKS.md); to use one: headstart"
        " weights import yolo11n.pt --model yolo11n --trust-pickle"
    )


def auto_detector(device_type: str, cfg: FitConfig | None = None) -> tuple[str, str]:
    """``detector: auto``: a YOLO detector whose pretrained weights the user imported (see
    :func:`yolo_candidate`; only when ``cfg`` is given), else fcos on a CPU and fasterrcnn on a GPU;
    and the reason to print, which says why YOLO was or was not chosen."""
    yolo, why_yolo = yolo_candidate(cfg)
    if yolo is not None:
        return yolo, why_yolo
    if device_type == "cuda":
        detector, why = "fasterrcnn", "fasterrcnn on a GPU (the most accurate of the three when steps are cheap)"
    else:
        detector, why = "fcos", f"fcos on {device_type} (anchor-free, and the cheapest per step of the three here)"
    return detector, why if cfg is None else f"{why}; {why_yolo}"


def resolve_detector(cfg: FitConfig, device_type: str) -> tuple[FitConfig, str | None]:
    """``cfg`` with ``detect.detector: auto`` decided (first, before anything that depends on the
    detector's backend), and the reason to print (None when it was set)."""
    if cfg.detect.detector != "auto":
        return cfg, None
    detector, why = auto_detector(device_type, cfg)
    return cfg.model_copy(
        update={"detect": cfg.detect.model_copy(update={"detector": detector})}
    ), f"detector auto: {why}"


def small_object_size(samples: Sequence) -> int | None:
    """The input size at which the training boxes' 25th-percentile shorter side is SMALL_OBJECT_PX
    (boxes scale with the image's longer side), to the nearest multiple of 32; None without boxes."""
    rel = sorted(min(b[2] - b[0], b[3] - b[1]) / max(s.width, s.height) for s in samples for b in s.boxes)
    if not rel:
        return None
    p25 = rel[(len(rel) - 1) // 4]
    return 32 * max(1, round(SMALL_OBJECT_PX / max(p25, 1e-6) / 32))


def auto_image_size(samples: Sequence, device_type: str) -> int:
    """The images' median longer side, or more where the objects are small (:func:`small_object_size`),
    rounded up to a multiple of 32, within 256-512 on a CPU (640 on a GPU)."""
    return _image_size_and_reason(samples, device_type)[0]


def _image_size_and_reason(samples: Sequence, device_type: str) -> tuple[int, str]:
    longer = [max(s.width, s.height) for s in samples] or [320]
    native = 32 * math.ceil(statistics.median(longer) / 32)
    small = small_object_size(samples) or 0
    size = int(min(max(native, small, 256), 640 if device_type == "cuda" else 512))
    why = (f"the training boxes' 25th-percentile shorter side reaches {SMALL_OBJECT_PX}px (the objects are small)"
           if small == size else "the training images' median longer side")
    return size, f"{why} (256-512 on a CPU)"


def resolve_choices(cfg: FitConfig, train_samples: Sequence, *, device_type: str) -> tuple[FitConfig, list[str]]:
    """``cfg`` with the detector, input size, batch size, LR, epochs, head epochs, strategy and
    augmentation preset decided, and the reasons to print."""
    from headstart._validation import check_choice
    from headstart.data.box_transforms import resolve_box_preset
    from headstart.tasks.detection.yolo import YOLO_DETECTORS

    reasons: list[str] = []
    check_choice("detect.detector", cfg.detect.detector, ("auto", *DETECTOR_NAMES, *YOLO_DETECTORS))
    cfg, why = resolve_detector(cfg, device_type)
    if why is not None:
        reasons.append(why)
    d, t, m = cfg.detect, cfg.train, cfg.model
    detector = d.detector
    image_size = m.image_size
    if image_size is None:
        image_size, why = _image_size_and_reason(train_samples, device_type)
        reasons.append(f"input size {image_size}px: {why}")
    if detector in YOLO_DETECTORS:  # Ultralytics' recipe (tasks/detection/yolo/recipe.py)
        from headstart.tasks.detection.yolo.recipe import resolve_yolo_choices
        from headstart.tasks.detection.yolo.weights import find_yolo_weights

        has_weights = m.pretrained and find_yolo_weights(detector, explicit=m.weights) is not None
        cfg = cfg.model_copy(update={"model": m.model_copy(update={"name": detector, "image_size": image_size})})
        cfg, more = resolve_yolo_choices(cfg, train_samples, device_type=device_type, has_weights=has_weights)
        return cfg, reasons + more
    batch_size = t.batch_size or (16 if device_type == "cuda" else 4)
    lr = t.lr if t.lr is not None else 5e-4 * batch_size / 4
    n = len(train_samples)
    epochs, head_epochs = t.epochs, d.head_epochs
    if epochs is None:
        total = int(min(max(math.ceil(TARGET_IMAGES / max(n, 1)), MIN_EPOCHS), MAX_EPOCHS))
        head_epochs = head_epochs or max(1, round(total * HEAD_FRACTION))
        epochs = max(1, total - head_epochs)
        reasons.append(f"{head_epochs} + {epochs} epochs: about {TARGET_IMAGES} training images seen in all")
    ema_decay = t.ema_decay
    if ema_decay is None and detector not in YOLO_DETECTORS:  # Ultralytics keeps its own average
        ema_decay = EMA_DECAY
        reasons.append(f"weights averaged (EMA, decay up to {EMA_DECAY}): the average is validated and kept")
    head_epochs = head_epochs or max(1, round(epochs * HEAD_FRACTION_OF_GIVEN))
    strategy = "head-ft" if t.strategy == "auto" else t.strategy
    preset = resolve_box_preset(cfg.augment.preset, n)
    update: dict[str, Any] = {
        "detect": d.model_copy(update={"detector": detector, "head_epochs": head_epochs}),
        "model": m.model_copy(update={"image_size": image_size}),
        "train": t.model_copy(update={"batch_size": batch_size, "lr": lr, "epochs": epochs, "strategy": strategy,
                                          "ema_decay": ema_decay}),
        # hflip auto (null): flips, as the detection defaults here were measured with them
        "augment": cfg.augment.model_copy(update={"preset": preset,
                                                  "hflip": 0.5 if cfg.augment.hflip is None else cfg.augment.hflip}),
    }
    return cfg.model_copy(update=update), reasons
