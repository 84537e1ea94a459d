"""`detector: auto` and YOLO: chosen only when Ultralytics is installed AND pretrained YOLO weights
were imported into the weights store, with the reason printed either way; tune's detection space
around a YOLO detector. No Ultralytics import and no training here: the store records are written
by hand and the installed check is patched where a test needs it one way or the other."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from headstart.config import build_config
from headstart.errors import ConfigError
from headstart.tasks.detection.choices import resolve_choices, resolve_detector, yolo_candidate
from headstart.tasks.detection.space import SEARCH_SPACE
from headstart.tuning.space import parse_space

_find_spec = importlib.util.find_spec


def _samples(n, width=320, height=240):
    return [SimpleNamespace(width=width, height=height, boxes=()) for _ in range(n)]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty weights store of the test's own."""
    root = tmp_path / "store"
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(root))
    return root


def _installed(monkeypatch, yes: bool):
    def find_spec(name, *args, **kwargs):
        if name == "ultralytics":
            return SimpleNamespace(name=name) if yes else None
        return _find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _import(store, model: str):
    """A store record as `headstart weights import X.pt --model NAME --trust-pickle` writes it."""
    from headstart.models import store as _store

    folder = store / model
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "abcd.safetensors").write_bytes(b"tensors")
    (folder / "abcd.yaml").write_text("nc: 80\n")
    _store.add_entry({"model": model, "file": f"{model}/abcd.safetensors", "yaml": f"{model}/abcd.yaml",
                      "sha256": f"{model}-abcd", "mapping": "ultralytics", "imported_at": "2026-01-01T00:00:00"}, store)


def _cfg(**flat):
    return build_config("data", task="detect", **flat)


def test_auto_keeps_torchvision_without_ultralytics_and_says_why(store, monkeypatch):
    _import(store, "yolo11n")
    _installed(monkeypatch, False)
    cfg, why = resolve_detector(_cfg(), "cpu")
    assert cfg.detect.detector == "fcos"
    assert why.startswith("detector auto: fcos on cpu") and "Ultralytics (the yolo extra, AGPL-3.0) is not installed" in why


def test_auto_keeps_torchvision_without_imported_weights_and_says_how(store, monkeypatch):
    _installed(monkeypatch, True)
    cfg, why = resolve_detector(_cfg(), "cuda")
    assert cfg.detect.detector == "fasterrcnn"
    assert "no pretrained YOLO weights in the weights store" in why and "0.111" in why
    assert "headstart weights import yolo11n.pt --model yolo11n --trust-pickle" in why


def test_auto_chooses_an_imported_yolo_and_resolves_its_recipe(store, monkeypatch):
    _installed(monkeypatch, True)
    _import(store, "yolov8s")
    _import(store, "yolo11m")
    _import(store, "yolov8n")
    assert yolo_candidate(_cfg())[0] == "yolo11m"  # the newest family first, then the smallest scale
    cfg, reasons = resolve_choices(_cfg(), _samples(50), device_type="cpu")
    assert reasons[0] == "detector auto: yolo11m (Ultralytics is installed and its pretrained weights are in the weights store)"
    assert cfg.detect.detector == "yolo11m" and cfg.model.name == "yolo11m" and cfg.model.image_size == 320
    # Ultralytics' recipe, with imported weights: the backbone frozen first
    assert cfg.train.batch_size == 16 and cfg.train.lr == 1e-3 and cfg.train.strategy == "head-ft"
    assert cfg.augment.preset == "medium" and cfg.detect.head_epochs >= 1


@pytest.mark.parametrize(
    "flat, why",
    [
        ({"model": "mobilenetv2_100"}, "model.name is the backbone 'mobilenetv2_100'"),
        ({"pretrained": False}, "model.pretrained is off"),
    ],
)
def test_a_backbone_or_random_init_keeps_auto_off_yolo(store, monkeypatch, flat, why):
    _installed(monkeypatch, True)
    _import(store, "yolo11n")
    cfg, reason = resolve_detector(_cfg(**flat), "cpu")
    assert cfg.detect.detector == "fcos" and f"YOLO not considered: {why}" in reason


def test_a_set_detector_is_kept_without_a_reason(store, monkeypatch):
    _installed(monkeypatch, True)
    _import(store, "yolo11n")
    cfg, why = resolve_detector(_cfg(detector="retinanet"), "cpu")
    assert cfg.detect.detector == "retinanet" and why is None


def test_tune_space_of_a_yolo_detector_from_its_yaml(store):
    cfg = _cfg(detector="yolo11n")
    resolved, _ = resolve_choices(cfg, _samples(50), device_type="cpu")
    assert resolved.train.strategy == "full" and resolved.detect.head_epochs is None  # no weights: all trains
    spec = SEARCH_SPACE.default_spec(cfg, resolved, 50)
    # what only torchvision's detectors read is left out, and the strategy (from the YAML, everything trains)
    assert set(spec) == {"lr", "epochs", "image_size", "augment"}
    assert spec["lr"]["low"] < resolved.train.lr == 1e-3 < spec["lr"]["high"]
    space = parse_space(spec, task="detect")
    point = space.default_point(SEARCH_SPACE.default_point(resolved))
    assert set(point) == set(space.params) and point["augment"] == "medium"


def test_tune_space_with_auto_lists_the_yolo_it_chose_first(store, monkeypatch):
    _installed(monkeypatch, True)
    _import(store, "yolo11n")
    cfg = _cfg()
    resolved, _ = resolve_choices(cfg, _samples(50), device_type="cpu")
    spec = SEARCH_SPACE.default_spec(cfg, resolved, 50)
    assert spec["detector"] == {"choices": ["yolo11n", "fasterrcnn", "fcos", "retinanet"]}
    assert spec["strategy"]["choices"] == ["head", "head-ft", "full"] and "backbone_lr_ratio" in spec
    point = parse_space(spec, task="detect").default_point(SEARCH_SPACE.default_point(resolved))
    assert point["detector"] == "yolo11n" and point["strategy"] == "head-ft"


def test_a_space_may_list_yolo_detectors_only_when_ultralytics_is_installed(monkeypatch):
    _installed(monkeypatch, True)
    assert parse_space({"detector": ["fcos", "yolo11n"]}, task="detect").params["detector"].choices == ("fcos", "yolo11n")
    with pytest.raises(ConfigError, match=r"'detect\.detector' parameter must be one of .*'yolo11n'.*Got 'yolo12n'"):
        parse_space({"detector": ["fcos", "yolo12n"]}, task="detect")
    _installed(monkeypatch, False)
    with pytest.raises(ConfigError, match=r"lists the YOLO detector 'yolo11n', which needs Ultralytics: pip install "
                                          r"'headstart\[yolo\]' \(AGPL-3\.0\), or leave it out of the space"):
        parse_space({"detector": ["fcos", "yolo11n"]}, task="detect")
