"""The detection task's half of `headstart tune`'s search space: the default ranges around
headstart's own choices, what the user set left out, the default point inside the space."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from headstart.config import build_config
from headstart.tasks import get_task
from headstart.tasks.detection.choices import resolve_choices
from headstart.tasks.detection.space import DETECTORS, SEARCH_SPACE
from headstart.tuning.space import parse_space


def _samples(n, width=320, height=240):
    return [SimpleNamespace(width=width, height=height, boxes=()) for _ in range(n)]


def _spec(n, device_type="cpu", **flat):
    cfg = build_config("data", task="detect", **flat)
    resolved, _ = resolve_choices(cfg, _samples(n), device_type=device_type)
    return cfg, resolved, SEARCH_SPACE.default_spec(cfg, resolved, n)


def test_the_detection_task_declares_its_search_space():
    assert get_task("detect").space() is SEARCH_SPACE and SEARCH_SPACE.task == "detect"
    assert get_task("detect").test_metric == "map" and get_task("classify").test_metric == "accuracy"


def test_detectors_match_the_models_table():
    from headstart.tasks.detection.models import DETECTORS as BUILT

    assert DETECTORS == BUILT


def test_default_space_of_a_small_dataset_searches_around_the_defaults():
    cfg, resolved, spec = _spec(50)
    assert set(spec) == {"lr", "backbone_lr_ratio", "epochs", "head_epochs", "image_size", "augment", "strategy",
                         "detector"}
    assert spec["lr"]["low"] < resolved.train.lr == 5e-4 < spec["lr"]["high"] and spec["lr"]["log"]
    assert spec["epochs"]["low"] < resolved.train.epochs < spec["epochs"]["high"]
    assert spec["head_epochs"] == resolved.detect.head_epochs  # fixed: trial 0 is exactly the default config
    assert spec["image_size"]["choices"] == [256, 320, 384] and resolved.model.image_size == 320
    assert spec["strategy"]["choices"] == ["head", "head-ft", "full"]
    assert spec["augment"]["choices"] == ["none", "light", "medium"]
    assert spec["detector"]["choices"] == ["fasterrcnn", "fcos", "retinanet"]
    space = parse_space(spec, task="detect")
    point = space.default_point(SEARCH_SPACE.default_point(resolved))
    assert set(point) == set(space.params)  # every default value lies inside its range
    assert point["detector"] == "fcos" and point["strategy"] == "head-ft" and point["augment"] == "light"


def test_default_space_of_a_larger_dataset_drops_the_frozen_backbone():
    _, resolved, spec = _spec(500, device_type="cuda")
    assert spec["strategy"]["choices"] == ["head-ft", "full"]
    assert spec["augment"]["choices"] == ["light", "medium", "strong"]
    assert resolved.train.lr == pytest.approx(2e-3) and spec["lr"]["high"] == pytest.approx(8e-3)


def test_values_the_user_set_are_not_searched():
    _, _, spec = _spec(50, detector="retinanet", image_size=256, lr=1e-3, epochs=4, strategy="full",
                       augment="medium", overrides=["detect.backbone_lr_ratio=0.5", "detect.head_epochs=2"])
    assert spec == {}
    _, _, spec = _spec(50, detector="fcos", image_size=256)
    assert "detector" not in spec and "image_size" not in spec and "lr" in spec


def test_horizontal_flips_default_on_for_detection_and_a_set_value_is_kept():
    _, resolved, _ = _spec(50)
    assert resolved.augment.hflip == 0.5
    cfg = build_config("data", task="detect", overrides=["augment.hflip=0"])
    assert resolve_choices(cfg, _samples(50), device_type="cpu")[0].augment.hflip == 0.0
