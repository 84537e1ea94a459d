"""The detection defaults resolved from the data (choices.resolve_choices): the epoch rule and the
weight average, each one printed with its reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from headstart.config import build_config
from headstart.tasks.detection.choices import resolve_choices


def _resolve(n, **flat):
    cfg = build_config("data", task="detect", **flat)
    return resolve_choices(cfg, [SimpleNamespace(width=256, height=256)] * n, device_type="cpu")


@pytest.mark.parametrize(("n", "head", "epochs"), [(240, 4, 14), (50, 12, 48), (2000, 2, 6)])
def test_epochs_from_the_training_images(n, head, epochs):
    """About 4,320 images seen (18 epochs of the benchmark's 240), 8 to 60 epochs, a fifth on the heads."""
    resolved, reasons = _resolve(n)
    assert (resolved.detect.head_epochs, resolved.train.epochs) == (head, epochs)
    assert f"{head} + {epochs} epochs: about 4320 training images seen in all" in reasons


def test_epochs_set_by_the_user_are_kept():
    resolved, reasons = _resolve(240, epochs=5)
    assert (resolved.detect.head_epochs, resolved.train.epochs) == (1, 5)
    assert not any("epochs" in r for r in reasons)


def test_the_weight_average_is_on_unless_turned_off():
    resolved, reasons = _resolve(240)
    assert resolved.train.ema_decay == 0.999 and any(r.startswith("weights averaged (EMA") for r in reasons)
    off, reasons = _resolve(240, overrides=["train.ema_decay=0"])
    assert off.train.ema_decay == 0 and not any("EMA" in r for r in reasons)
