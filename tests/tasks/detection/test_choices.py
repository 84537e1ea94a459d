"""The detection defaults resolved from the data (choices.resolve_choices): the epoch rule and the
weight average, each one printed with its reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from headstart.config import build_config
from headstart.tasks.detection.choices import resolve_choices


def _resolve(n, **flat):
    cfg = build_config("data", task="detect", **flat)
    return resolve_choices(cfg, [SimpleNamespace(width=256, height=256, boxes=())] * n, device_type="cpu")


@pytest.mark.parametrize(("n", "head", "epochs"), [(240, 4, 10), (50, 18, 42), (2000, 2, 6)])
def test_epochs_from_the_training_images(n, head, epochs):
    """About 3,360 images seen (14 epochs of the benchmark's 240), 8 to 60 epochs, 30 % on the heads."""
    resolved, reasons = _resolve(n)
    assert (resolved.detect.head_epochs, resolved.train.epochs) == (head, epochs)
    assert f"{head} + {epochs} epochs: about 3360 training images seen in all" in reasons


def test_epochs_set_by_the_user_are_kept():
    resolved, reasons = _resolve(240, epochs=5)
    assert (resolved.detect.head_epochs, resolved.train.epochs) == (1, 5)
    assert not any("epochs" in r for r in reasons)


def test_the_weight_average_is_on_unless_turned_off():
    resolved, reasons = _resolve(240)
    assert resolved.train.ema_decay == 0.999 and any(r.startswith("weights averaged (EMA") for r in reasons)
    off, reasons = _resolve(240, overrides=["train.ema_decay=0"])
    assert off.train.ema_decay == 0 and not any("EMA" in r for r in reasons)


def _images(n, width, height, box_side):
    return [SimpleNamespace(width=width, height=height, boxes=((10.0, 10.0, 10.0 + box_side, 10.0 + 2 * box_side),))
            for _ in range(n)]


def test_input_size_is_the_images_own_when_the_objects_are_large_enough():
    cfg = build_config("data", task="detect")
    resolved, reasons = resolve_choices(cfg, _images(20, 300, 200, 60), device_type="cpu")
    assert resolved.model.image_size == 320  # 300 rounded up to a multiple of 32
    assert "input size 320px: the training images' median longer side (256-512 on a CPU)" in reasons


def test_small_objects_scale_the_input_up_until_a_quarter_of_them_reach_24_px():
    cfg = build_config("data", task="detect")
    # 15 px shorter sides on 256 px images: 24 px at 409.6 px, to the nearest multiple of 32
    resolved, reasons = resolve_choices(cfg, _images(20, 256, 256, 15), device_type="cpu")
    assert resolved.model.image_size == 416
    assert any(r.startswith("input size 416px: the training boxes' 25th-percentile shorter side reaches 24px")
               for r in reasons)
    tiny, _ = resolve_choices(cfg, _images(20, 256, 256, 2), device_type="cpu")
    assert tiny.model.image_size == 512  # the CPU's cap
    gpu, _ = resolve_choices(cfg, _images(20, 256, 256, 2), device_type="cuda")
    assert gpu.model.image_size == 640


def test_an_input_size_given_by_the_user_is_kept():
    cfg = build_config("data", task="detect", image_size=224)
    resolved, reasons = resolve_choices(cfg, _images(20, 256, 256, 2), device_type="cpu")
    assert resolved.model.image_size == 224 and not any(r.startswith("input size") for r in reasons)
