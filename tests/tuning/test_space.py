"""The search space: parsing, validation messages, defaults, grid values, applying to a config."""

from __future__ import annotations

import pytest

from headstart.config import build_config
from headstart.errors import ConfigError
from headstart.tuning.progress import parse_duration
from headstart.tuning.samplers import make_pruner, make_sampler
from headstart.tuning.space import apply_params, default_space, load_space, parse_space


def test_parse_ranges_choices_and_fixed_values():
    space = parse_space({"lr": {"low": 1e-5, "high": 1e-3, "log": True}, "epochs": {"low": 2, "high": 6},
                         "batch_size": [16, 32], "label_smoothing": 0.0, "train.momentum": {"low": 0.8, "high": 0.95}})
    assert space.params["lr"].kind == "float" and space.params["lr"].log
    assert space.params["epochs"].kind == "int"
    assert space.params["batch_size"].choices == (16, 32)
    assert space.fixed == {"label_smoothing": 0.0}
    assert set(space.numeric()) == {"lr", "epochs", "train.momentum"}
    # ints in the YAML of a float parameter still make a float range
    assert parse_space({"weight_decay": {"low": 0, "high": 1}}).params["weight_decay"].kind == "float"


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"lrr": {"low": 1e-4, "high": 1e-2}}, r"Unknown search-space parameter 'lrr'\. Did you mean 'lr'"),
        ({"lr": {"low": 1e-2, "high": 1e-4}}, r"'lr' has low > high \(0\.01 > 0\.0001\)\. Swap them"),
        ({"strategy": {"choices": []}}, r"'strategy' has an empty 'choices' list"),
        ({"batch_size": []}, r"'batch_size' has an empty 'choices' list"),
        ({"lr": {"lo": 1e-4, "high": 1e-2}}, r"Unknown key 'lo' in the search space of 'lr'\. Did you mean 'low'"),
        ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, r"log-scaled, so 'low' must be > 0"),
        ({"strategy": ["full", "lp_ft"]}, r"'train\.strategy' parameter must be one of .*Got 'lp_ft'\. Did you mean 'lp-ft'"),
        ({"label_smoothing": {"low": 0.0, "high": 1.5}}, r"'train\.label_smoothing' parameter must be a float in \[0, 1\)"),
        ({"epochs": {"low": 1.5, "high": 4}}, r"'epochs' needs integer bounds"),
        ({"lr": {"high": 1e-2}}, r"needs 'low' and 'high' \(missing low\)"),
        ({"train.nope": {"low": 1, "high": 2}}, r"Unknown parameter 'train\.nope'"),
        ({"label_smoothing": 0.1}, r"searches nothing"),
    ],
)
def test_space_errors_name_the_value_and_the_fix(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_space(spec)


def test_space_yaml_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {low: 1.0e-5, high: 1.0e-3, log: true}\nstrategy: [linear-probe, lp-ft]\n")
    assert set(load_space(path).params) == {"lr", "strategy"}
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "missing.yaml")


def test_default_space_depends_on_dataset_size():
    small, large = default_space(50), default_space(50_000)
    assert small.params["strategy"].choices == ("linear-probe", "lp-ft")
    assert "linear-probe" not in large.params["strategy"].choices
    assert max(large.params["batch_size"].choices) > max(small.params["batch_size"].choices)
    assert small.params["epochs"].high == 10 and default_space(50, base_epochs=3).params["epochs"].high == 3


def test_grid_values():
    space = parse_space({"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "epochs": {"low": 1, "high": 5, "step": 2},
                         "augment": ["light", "medium"]})
    assert space.params["lr"].grid_values(3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert space.params["epochs"].grid_values() == [1, 3, 5]
    assert space.params["augment"].grid_values() == ["light", "medium"]


def test_apply_params_makes_a_valid_config():
    tree = apply_params({}, {"lr": 3e-4, "augment_strength": 2.0, "layer_decay": 1.0, "augment": "strong", "epochs": 3})
    cfg = build_config(config=tree)
    assert cfg.train.lr == 3e-4 and cfg.train.layer_decay is None and cfg.train.epochs == 3
    assert cfg.augment.rotation == 30.0 and cfg.augment.scale_min < 0.35 and cfg.augment.preset == "strong"
    weak = build_config(config=apply_params({}, {"augment_strength": 0.0}))
    assert weak.augment.rotation == 0.0 and weak.augment.scale_min == 1.0


def test_samplers_and_pruners_by_name():
    space = parse_space({"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "weight_decay": {"low": 1e-4, "high": 0.1}})
    for name in ("tpe", "random", "grid", "cmaes"):
        assert make_sampler(name, space) is not None
    for name in ("median", "halving", "hyperband", "none"):
        assert make_pruner(name) is not None
    with pytest.raises(ConfigError, match=r"'sampler' parameter must be one of .*Got 'tpee'\. Did you mean 'tpe'"):
        make_sampler("tpee", space)
    with pytest.raises(ConfigError, match=r"'cmaes' sampler needs at least two numeric ranges"):
        make_sampler("cmaes", parse_space({"lr": {"low": 1e-4, "high": 1e-2}, "augment": ["light", "none"]}))


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1h", 3600), ("1h30m", 5400), ("45", 45), (2.5, 2.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "20x", "m", "-5", "0s"])
def test_parse_duration_errors(text):
    with pytest.raises(ConfigError, match=r"'timeout' parameter must be a (positive )?duration"):
        parse_duration(text)
