"""Default output folders: one rule for the dataset's name and the numbering, used by fit, tune and rank."""

from pathlib import Path

import pytest

from headstart.run_folder import dataset_name, default_run_dir
from headstart.select.rank import default_rank_dir
from headstart.tuning.study import _default_dir as default_tune_dir


@pytest.mark.parametrize("data, name", [("data/flowers", "flowers"), ("data/flowers/", "flowers"),
                                        ("labels.CSV", "labels"), (Path("a/b.csv"), "b"), (None, "run"), ("", "run"),
                                        ("/", "run")])
def test_dataset_name(data, name):
    assert dataset_name(data) == name


def test_each_command_keeps_its_folder_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "flowers"
    csv = tmp_path / "labels.csv"
    assert default_run_dir(data) == Path("runs/flowers")  # fit
    assert default_run_dir(None) == Path("runs/run")
    assert default_tune_dir(data) == Path("runs/tune-flowers")
    assert default_tune_dir(csv) == Path("runs/tune-labels")
    assert default_rank_dir(data) == Path("runs/flowers-rank")
    assert default_rank_dir(str(csv)) == Path("runs/labels-rank")
    assert default_run_dir(data, prefix="p-", suffix="-s", root=tmp_path / "out") == tmp_path / "out/p-flowers-s"


def test_numbering_skips_folders_that_hold_something(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "flowers"
    for folder in ("runs/flowers", "runs/tune-flowers", "runs/tune-flowers-2", "runs/flowers-rank"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "x").write_text("x")
    Path("runs/flowers-2").mkdir()  # empty: used as it is
    assert default_run_dir(data) == Path("runs/flowers-2")
    assert default_tune_dir(data) == Path("runs/tune-flowers-3")
    # rank's folder is reused (fit --model auto looks for its table there): never numbered
    assert default_rank_dir(data) == Path("runs/flowers-rank")
    assert default_run_dir(data, suffix="-rank") == Path("runs/flowers-rank-2")
