"""The CLI flags, FLAT_KEYS and the README's CLI reference all come from (or are checked against) the
config fields, so they cannot drift apart; `--resume` names the arguments it would ignore."""

import argparse
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from headstart.commands import fit as fit_command
from headstart.commands import tune as tune_command
from headstart.config import FLAT_KEYS, FLAT_PARAMS, FitConfig, build_config
from headstart.config_flags import CONFIG_FLAGS, check_resume_arguments, flat_from_args
from headstart.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"
# not config fields: `headstart fit`'s own options
FIT_OWN = {"-h", "--help", "--config", "--tune", "--quiet"}
# the names before the flags were derived from the config: they must keep working
OLD_FLAT_KEYS = {
    "data": "data.path", "csv_root": "data.csv_root", "val_fraction": "data.val_fraction",
    "test_fraction": "data.test_fraction", "strict": "data.strict", "min_image_size": "data.min_image_size",
    "cache": "data.cache", "num_workers": "data.num_workers", "model": "model.name", "weights": "model.weights",
    "pretrained": "model.pretrained", "allow_download": "model.allow_download", "image_size": "model.image_size",
    "augment": "augment.preset", "strategy": "train.strategy", "epochs": "train.epochs",
    "probe_epochs": "train.probe_epochs", "batch_size": "train.batch_size", "lr": "train.lr",
    "probe_lr": "train.probe_lr", "optimizer": "train.optimizer", "weight_decay": "train.weight_decay",
    "label_smoothing": "train.label_smoothing", "class_weights": "train.class_weights",
    "layer_decay": "train.layer_decay", "patience": "train.patience", "monitor": "train.monitor",
    "seed": "train.seed", "device": "train.device", "out": "out", "resume": "resume",
}
OLD_VALUE_FLAGS = {
    "--model", "--weights", "--strategy", "--epochs", "--probe-epochs", "--batch-size", "--lr", "--probe-lr",
    "--optimizer", "--weight-decay", "--label-smoothing", "--layer-decay", "--class-weights", "--image-size",
    "--augment", "--patience", "--monitor", "--val-fraction", "--test-fraction", "--cache", "--num-workers",
    "--seed", "--device", "--out",
}


def _parser(module) -> argparse.ArgumentParser:
    return module.add_parser(argparse.ArgumentParser().add_subparsers())


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def _readme_fit_flags() -> set[str]:
    """The flags in the first column of the README's `headstart fit` table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    table = section.split("`headstart fit", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]
    assert rows, "no table after `headstart fit` in the README's CLI reference"
    return {flag for row in rows for flag in re.findall(r"--[a-z][a-z-]*", row.split("|")[1])}


def test_flat_keys_are_the_old_names_and_real_fields():
    # the old names, plus the ones added since (task: the engine/tasks restructuring; devices, sync_bn: DDP)
    assert FLAT_KEYS == {**OLD_FLAT_KEYS, "task": "task", "detector": "detect.detector", "devices": "train.devices",
                         "sync_bn": "train.sync_bn"}
    for flat, dotted in FLAT_KEYS.items():
        model: type[BaseModel] = FitConfig
        *sections, name = dotted.split(".")
        for section in sections:
            model = model.model_fields[section].annotation
        assert name in model.model_fields, f"{flat} -> {dotted}"
        assert FLAT_PARAMS[flat].field is model.model_fields[name]
        build_config(**{flat: None})  # accepted as a flat parameter


def test_flags_are_the_old_names():
    value_flags = {f for f, s in CONFIG_FLAGS.items() if s.action == "store"}
    assert value_flags == OLD_VALUE_FLAGS | {"--task", "--detector", "--devices"}
    assert {f: s.action for f, s in CONFIG_FLAGS.items() if s.action != "store"} == {
        "--strict": "store_true", "--resume": "store_true", "--allow-download": "store_true",
        "--no-pretrained": "store_false", "--sync-bn": "store_true"}
    assert set(fit_command.TEXT_KEYS) == {"task", "model", "weights", "detector", "monitor", "out"}
    for flag, spec in CONFIG_FLAGS.items():
        assert FLAT_KEYS[spec.flat] == spec.dotted, flag
    # the old tables, derived
    assert fit_command.FIT_OPTIONS["--lr"][0] == "lr" and set(fit_command.FIT_OPTIONS) == OLD_VALUE_FLAGS | {"--task", "--detector",
                                                                                                                  "--devices"}
    assert set(fit_command.FIT_FLAGS) == {"--strict", "--resume", "--allow-download", "--no-pretrained", "--sync-bn"}


def test_help_comes_from_the_field_with_its_default():
    assert CONFIG_FLAGS["--probe-epochs"].help == (
        "Epochs over cached features (linear-probe, and lp-ft's probing stage) (default: 50).")
    assert CONFIG_FLAGS["--epochs"].metavar == "N" and CONFIG_FLAGS["--lr"].metavar == "F"
    assert CONFIG_FLAGS["--augment"].metavar == "{auto,none,light,medium,strong}"
    assert CONFIG_FLAGS["--model"].metavar == "NAME"
    for flag, spec in CONFIG_FLAGS.items():
        if spec.action == "store":  # the default is shown, from the model or, for None, the docstring
            assert "default" in spec.help, flag
    help_text = _parser(fit_command).format_help()
    assert "(default: 0.15)" in help_text and "--no-pretrained" in help_text


def test_fit_parser_has_exactly_the_config_flags():
    assert _options(_parser(fit_command)) == set(CONFIG_FLAGS) | FIT_OWN


def test_readme_table_lists_every_fit_flag():
    parser_flags = _options(_parser(fit_command)) - {"-h", "--help"}
    readme = _readme_fit_flags()
    assert not parser_flags - readme, f"flags of `headstart fit` missing from the README table: {parser_flags - readme}"
    assert not readme - parser_flags, f"README flags that `headstart fit` does not have: {readme - parser_flags}"


def test_flat_from_args_reads_values_as_yaml_except_text():
    parser = _parser(fit_command)
    args = parser.parse_args(["d", "--lr", "3e-4", "--patience", "null", "--model", "1e3", "--out", "2024",
                              "--no-pretrained", "--strict"])
    assert flat_from_args(args, CONFIG_FLAGS) == {
        "lr": 3e-4, "patience": None, "model": "1e3", "out": "2024", "pretrained": False, "strict": True}
    assert flat_from_args(parser.parse_args([]), CONFIG_FLAGS) == {}


def test_tune_reuses_the_config_flags_but_out_and_resume():
    parser = _parser(tune_command)
    options = _options(parser)
    assert set(CONFIG_FLAGS) - {"--out", "--resume"} <= options
    args = parser.parse_args(["d", "--lr", "0.1", "--no-pretrained", "--out", "study", "--resume", "x"])
    assert flat_from_args(args, tune_command.BASE_FLAGS) == {"lr": 0.1, "pretrained": False}
    assert (args.out, args.resume) == ("study", "x")


def test_tune_resume_names_the_arguments_it_would_ignore():
    parser = _parser(tune_command)
    args = parser.parse_args(["--resume", "runs/s", "--trials", "9", "--workers", "2"])
    tune_command.check_resume(args, None, [], {})  # what a resumed study uses
    args = parser.parse_args(["--resume", "runs/s", "--sampler", "random", "--lr", "0.1"])
    with pytest.raises(ConfigError, match=r"^--resume continues the study in 'runs/s' with its saved settings "
                       r"\(tune.json\), so these arguments would be ignored: the dataset 'imgs', --sampler random, "
                       r"--lr 0.1, train.epochs=3. Drop them"):
        tune_command.check_resume(args, "imgs", ["train.epochs=3"], {"lr": 0.1})


@pytest.fixture
def saved(tmp_path):
    """A run folder's config.yaml, as fit writes it (every 'auto' resolved)."""
    cfg = build_config(tmp_path / "imgs", model="test_resnet", strategy="full", lr=2e-4, epochs=8, image_size=32,
                       num_workers=0, augment="light", out=tmp_path / "run")
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "config.yaml"
    path.write_text(cfg.to_yaml())
    return path


def test_resume_alone_or_with_out_passes(saved):
    check_resume_arguments({"resume": True, "out": saved.parent}, saved=saved)
    check_resume_arguments({"resume": True, "out": saved.parent, "lr": None})  # None: not given
    check_resume_arguments({"lr": 0.1, "epochs": 3}, ["train.seed=1"], "x.yaml", data="d")  # no resume: no check


def test_resume_names_every_argument_it_would_ignore(saved):
    out = str(saved.parent)
    with pytest.raises(ConfigError, match=(
        rf"^The 'resume' parameter continues the run in '{re.escape(out)}' with its saved config.yaml, so these "
        r"arguments would be ignored: data='other', lr=0.1, pretrained=False, 'train.seed=3'. Drop them, or start "
        r"a new run with a different 'out'.$"
    )):
        check_resume_arguments({"resume": True, "out": out, "lr": 0.1, "pretrained": False}, ["train.seed=3"],
                               data="other", saved=saved)
    with pytest.raises(ConfigError, match=(
        r"^--resume continues the run in .* so these arguments would be ignored: the dataset 'other', --config "
        r"c.yaml, --lr 0.1, --no-pretrained, --strict, --tune 15m, train.seed=3. Drop them, or start a new run "
        r"with a different --out.$"
    )):
        check_resume_arguments({"resume": True, "out": out, "lr": 0.1, "pretrained": False, "strict": True,
                                "tune": "15m"}, ["train.seed=3"], "c.yaml", data="other", saved=saved, cli=True)


def test_resume_accepts_arguments_equal_to_the_saved_config(saved):
    run = saved.parent
    flat = {"resume": True, "out": run, "model": "test_resnet", "epochs": 8, "lr": 2e-4, "image_size": 32,
            "pretrained": True, "strict": False}
    check_resume_arguments(flat, ["train.epochs=8", "augment.preset=light"], saved, data=run.parent / "imgs",
                           saved=saved)
    check_resume_arguments(flat, config=build_config(config=saved), saved=build_config(config=saved))
    # 'auto' was resolved when the run started: continuing keeps what it resolved to, so say so
    with pytest.raises(ConfigError, match=r"would be ignored: --model auto, --epochs 9\. "):
        check_resume_arguments({**flat, "model": "auto", "epochs": 9}, saved=saved, cli=True)
    with pytest.raises(ConfigError, match=r"would be ignored: 'train.epochs=nine'\. "):  # invalid: not kept either
        check_resume_arguments(flat, ["train.epochs=nine"], saved=saved)


def test_resume_without_the_saved_config_names_everything_given():
    with pytest.raises(ConfigError, match=r"continues the run in 'runs/x' .* ignored: data='imgs', epochs=8\. "):
        check_resume_arguments({"resume": True, "out": "runs/x", "epochs": 8}, data="imgs")
    with pytest.raises(ConfigError, match=r"^--resume continues the run in --out with"):
        check_resume_arguments({"resume": True, "epochs": 8}, cli=True)
