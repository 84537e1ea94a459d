"""Every ``auto`` of a classification config resolved in one place (tasks/classification/choices.py):
the default recipe of issue 15 (full fine-tuning, light augmentation, no flips) and the user's own
values kept."""

from __future__ import annotations

import pytest

from headstart.config import build_config
from headstart.tasks.classification.choices import resolve_choices
from headstart.tasks.classification.strategies import FULL_FINETUNE_LR


def test_the_default_recipe_for_a_medium_dataset():
    r = resolve_choices(build_config("data"), 500)
    assert (r.train.strategy, r.augment.preset, r.augment.hflip, r.train.freeze_bn) == ("full", "light", 0.0, False)
    assert r.train.lr == pytest.approx(FULL_FINETUNE_LR) and r.train.batch_size == 32 and r.train.epochs == 10
    assert r.augment.scale_min == 0.6


def test_a_tiny_dataset_gets_the_probe_and_values_the_user_set_are_kept():
    assert resolve_choices(build_config("data"), 150).train.strategy == "linear-probe"
    cfg = build_config("data", overrides=["augment.hflip=0.5", "augment.preset=medium", "train.strategy=lp-ft"])
    r = resolve_choices(cfg, 500)
    assert (r.augment.hflip, r.augment.preset, r.train.strategy, r.train.freeze_bn) == (0.5, "medium", "lp-ft", True)
    assert r.train.lr == pytest.approx(1e-4)


def test_an_out_of_range_flip_probability_is_refused_with_its_name():
    from headstart.errors import ConfigError

    with pytest.raises(ConfigError, match=r"augment\.hflip"):
        build_config("data", overrides=["augment.hflip=1.5"])
