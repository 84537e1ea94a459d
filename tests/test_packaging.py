"""What `pip install headstart[...]` pulls, and how a light install (no torch) behaves: the CLI starts,
and every command that trains says which extra to install instead of failing with a traceback.

The predict-with-ONNX side of the light install is in tests/export/test_light_install.py (it needs an
exported model)."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

from headstart._imports import EXTRA_MODULES, MissingDependencyError, check_extras, extra_of_module, missing_modules
from tests.light_install import BLOCKED, light_cli

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "timm", "scikit-learn", "safetensors", "matplotlib"}


def _name(requirement: str) -> str:
    """'scikit-learn>=1.3' -> 'scikit-learn'; 'headstart[train,tune]' -> 'headstart[train,tune]'."""
    return re.split(r"[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _closure(project: dict, extra: str) -> set[str]:
    """The package names an extra installs, following headstart[...] references (not the base deps)."""
    names: set[str] = set()
    for req in project["optional-dependencies"][extra]:
        name = _name(req)
        match = re.fullmatch(r"headstart\[(.+)\]", name)
        if match:
            for sub in match.group(1).split(","):
                names |= _closure(project, sub.strip())
        else:
            names.add(name)
    return names


def test_base_and_predict_install_no_torch(project):
    base = {_name(r) for r in project["dependencies"]}
    predict = _closure(project, "predict")
    assert base == {"numpy", "pillow", "pydantic", "pyyaml"}
    assert predict == {"onnxruntime"}
    assert not (base | predict) & (HEAVY | {"rich", "tqdm"})


def test_train_extra_holds_the_training_stack_with_version_floors(project):
    train = project["optional-dependencies"]["train"]
    assert {_name(r) for r in train} == HEAVY | {"rich", "tqdm", "faster-coco-eval"}
    assert all(">=" in r for r in train), train


def test_all_and_dev_reach_every_extra(project):
    extras = set(project["optional-dependencies"]) - {"all", "dev", "yolo"}
    assert {"train", "predict", "tune", "export", "serve", "doctor"} <= extras
    everything = set().union(*(_closure(project, e) for e in extras))
    assert _closure(project, "all") == everything
    assert everything <= _closure(project, "dev")
    # the YOLO backend (Ultralytics, AGPL-3.0) is opt-in: never pulled by `all`, always by `dev` (CI tests it)
    assert _closure(project, "yolo") == {"ultralytics"}
    assert "ultralytics" not in _closure(project, "all")
    assert "ultralytics" in _closure(project, "dev")
    assert HEAVY <= _closure(project, "dev")


def test_extra_modules_are_installed_by_their_extra(project):
    """headstart._imports.EXTRA_MODULES (what the CLI checks) matches pyproject.toml's extras."""
    dists = importlib.metadata.packages_distributions()
    for extra, modules in EXTRA_MODULES.items():
        listed = _closure(project, extra)
        for module in modules:
            provided = {d.lower().replace("_", "-") for d in dists.get(module, [])}
            assert provided, f"{module!r} is not installed in the test environment (pip install -e '.[dev]')"
            assert provided & listed, f"{module!r} ({provided}) is not in the {extra!r} extra {sorted(listed)}"


def test_check_extras_names_the_extra_and_the_missing_packages(monkeypatch):
    check_extras(("train", "predict"), "`headstart fit`")  # the test environment has everything
    monkeypatch.setitem(EXTRA_MODULES, "fake", ("numpy", "not_a_pkg_xyz", "sklearn"))
    monkeypatch.setitem(sys.modules, "sklearn", None)  # a module set to None counts as not importable
    with pytest.raises(MissingDependencyError,
                       match=r"^`headstart fit` needs the 'fake' extra \(not installed: not_a_pkg_xyz, scikit-learn\)\."
                             r" Install it with: pip install 'headstart\[fake\]'\.$"):
        check_extras(("predict", "fake"), "`headstart fit`")
    with pytest.raises(KeyError, match="unknown extras"):
        check_extras(("trian",), "x")
    assert missing_modules(["json", "not_a_pkg_xyz"]) == ["not_a_pkg_xyz"]


def test_extra_of_module():
    assert extra_of_module("torch.nn") == "train"
    assert extra_of_module("sklearn") == "train"
    assert extra_of_module("onnxruntime") == "predict"
    assert extra_of_module("optuna") == "tune"
    assert extra_of_module("numpy") is None and extra_of_module(None) is None


def test_the_light_blocker_blocks_the_training_stack_only():
    assert {"torch", "timm", "torchvision", "sklearn", "safetensors", "matplotlib"} <= set(BLOCKED)
    assert not {"numpy", "PIL", "pydantic", "yaml", "onnxruntime"} & set(BLOCKED)
    proc = light_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("headstart "), proc.stderr
    import subprocess

    from tests.light_install import BLOCK_HEAVY

    code = BLOCK_HEAVY + "import numpy, PIL, pydantic, yaml, onnxruntime, headstart\nimport torch"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "ModuleNotFoundError: No module named 'torch' (blocked" in proc.stderr


def test_light_cli_help_and_weights_list(tmp_path):
    proc = light_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "predict" in proc.stdout and "fit" in proc.stdout
    proc = light_cli("predict", "--help")
    assert proc.returncode == 0 and "onnxruntime" in proc.stdout, proc.stderr
    env = {**__import__("os").environ, "HEADSTART_WEIGHTS_DIR": str(tmp_path / "store")}
    proc = light_cli("weights", "list", env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "args, command, extras",
    [
        (["fit", "{data}", "--out", "{tmp}/run"], "fit", "train"),
        (["rank", "{data}"], "rank", "train"),
        (["tune", "{data}", "--trials", "2"], "tune", "train,tune"),
        (["doctor", "{data}"], "doctor", "train"),
        (["report", "{tmp}"], "report", "train"),
        (["export", "{tmp}", "--format", "onnx"], "export", "train"),
        (["weights", "fetch", "mobilenetv2_100"], "weights fetch", "train"),
        (["weights", "import", "{tmp}/w.safetensors", "--model", "resnet18"], "weights import", "train"),
        (["serve", "{tmp}/model.onnx"], "serve", "serve"),
    ],
)
def test_light_cli_commands_that_need_an_extra_say_which(args, command, extras, image_folder, tmp_path):
    proc = light_cli(*[a.format(data=image_folder, tmp=tmp_path) for a in args])
    names = " and ".join(repr(e) for e in extras.split(","))
    assert proc.returncode == 1, proc.stderr
    assert re.search(rf"^headstart {command.split()[0]}: error: `headstart {command}` needs the {names} extras? \(not"
                     rf" installed: [^)]+\)\. Install it with: pip install 'headstart\[{extras}\]'\.$", proc.stderr,
                     re.MULTILINE), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before doing anything


def test_cli_names_the_extra_of_a_module_missing_deeper_in_a_command(monkeypatch, capsys):
    """A module missing on a path that REQUIRES does not cover (here: doctor's imagehash) still gives the
    install hint; a missing module that belongs to no extra is a bug and keeps its traceback."""
    import headstart.commands.report as report
    from headstart.cli import main

    def needs_imagehash(args):
        raise ModuleNotFoundError("No module named 'imagehash'", name="imagehash")

    monkeypatch.setattr(report, "run", needs_imagehash)
    assert main(["report", "somewhere"]) == 1
    assert ("headstart report: error: `headstart report` needs 'imagehash' (the 'doctor' extra), which is not"
            " installed. Install it with: pip install 'headstart[doctor]'.") in capsys.readouterr().err

    def bug(args):
        raise ModuleNotFoundError("No module named 'headstart.nope'", name="headstart.nope")

    monkeypatch.setattr(report, "run", bug)
    with pytest.raises(ModuleNotFoundError, match="headstart.nope"):
        main(["report", "somewhere"])
