import pytest

from headstart.config import FitConfig, build_config, parse_override
from headstart.errors import ConfigError


def test_defaults_and_flat_kwargs():
    cfg = build_config("imgs", epochs=3, lr=1e-4, augment="light", model="test_resnet")
    assert cfg.data.path.name == "imgs"
    assert (cfg.train.epochs, cfg.train.lr, cfg.augment.preset, cfg.model.name) == (3, 1e-4, "light", "test_resnet")


def test_priority_yaml_then_overrides_then_flat(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("train:\n  lr: 0.01\n  epochs: 7\nmodel:\n  name: test_vit\n")
    cfg = build_config(config=f, overrides=["train.lr=3e-4"], epochs=2)
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.epochs == 2
    assert cfg.model.name == "test_vit"


def test_yaml_round_trip(tmp_path):
    cfg = build_config("data", lr=0.5, layer_decay=0.7)
    f = tmp_path / "c.yaml"
    f.write_text(cfg.to_yaml())
    assert build_config(config=f) == cfg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=-1), r"The 'train.lr' parameter must be a float in \(0, inf\) or null. Got -1."),
        (dict(epochs=0), r"The 'train.epochs' parameter must be an int in \[1, inf\) or null. Got 0."),
        (dict(augment="lite"), r"must be one of \{'auto', 'none', 'light', 'medium', 'strong'\}. Got 'lite'. Did you mean 'light'\?"),
        (dict(strict="maybe"), r"The 'data.strict' parameter must be true or false. Got 'maybe'."),
        (dict(val_fraction=1.5), r"The 'data.val_fraction' parameter must be a float in \(0, 1\). Got 1.5."),
        (dict(lrr=1), r"Unknown parameter 'lrr'. Did you mean 'lr'\?"),
    ],
)
def test_bad_values_name_the_parameter(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_config("d", **kwargs)


def test_unknown_nested_key_suggests():
    with pytest.raises(ConfigError, match=r"Unknown parameter 'train.lrr'. Did you mean 'train.lr'"):
        build_config("d", overrides=["train.lrr=1"])
    with pytest.raises(ConfigError, match=r"Unknown parameter 'trian'. Did you mean 'train'\?"):
        build_config("d", overrides=["trian.lr=1"])
    with pytest.raises(ConfigError, match=r"The 'train' parameter must be a mapping"):
        build_config("d", overrides=["train=3"])


def test_parse_override_scalars():
    assert parse_override("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_override("train.epochs=5") == ("train.epochs", 5)
    assert parse_override("data.strict=true") == ("data.strict", True)
    assert parse_override("model.name=resnet50") == ("model.name", "resnet50")
    with pytest.raises(ConfigError, match=r"An override must look like 'section.key=value'.*Got 'train.lr'"):
        parse_override("train.lr")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"The config file '.*missing.yaml' does not exist"):
        build_config(config=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"must hold a mapping of sections .* Got a list"):
        build_config(config=bad)


def test_config_errors_are_value_errors():
    with pytest.raises(ValueError):
        build_config("d", lr=0)
    assert isinstance(FitConfig(), FitConfig)


def test_strategy_and_monitor_are_checked_against_the_task():
    """Strategies and metrics belong to the task, so config.py (core) takes any name and the fit
    workflow checks it against the task before any data is read."""
    from headstart.workflows.fit import check_task

    with pytest.raises(ConfigError, match=r"'train.strategy' parameter must be one of \{'auto', 'linear-probe',"
                                          r" 'full', 'lp-ft'\}. Got 'lpft'. Did you mean 'lp-ft'\?"):
        check_task(build_config(strategy="lpft"))
    check_task(build_config(strategy="lp-ft", monitor="val_macro_f1"))
