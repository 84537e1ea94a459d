import json
import subprocess
import sys

import pytest

from headstart.errors import ConfigError, DataError
from headstart.select.rank import default_max_images, parse_budget, rank, stratified_order
from tests.conftest import write_synthetic_folder


@pytest.fixture(scope="module")
def two_model_store(tmp_path_factory):
    """A store with random-init test_resnet and test_efficientnet, imported as a user would."""
    import timm
    import torch

    from headstart.models.importer import import_weights

    root = tmp_path_factory.mktemp("rankstore")
    for name in ("test_resnet", "test_efficientnet"):
        torch.manual_seed(0)
        src = root / f"{name}.pth"
        torch.save(timm.create_model(name, pretrained=False).state_dict(), src)
        import_weights(src, name, mapping="strict", store_root=root / "weights")
    return root / "weights"


@pytest.fixture
def store_env(two_model_store, monkeypatch, tmp_path):
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(two_model_store))
    monkeypatch.setenv("HEADSTART_FEATURES_DIR", str(tmp_path / "features"))
    return two_model_store


def _rank(folder, out, **kw):
    args = dict(candidates="test_resnet,test_efficientnet,test_vit", image_sizes=[32, 48], budget="10m",
                out=out, device="cpu", verbose=False, batch_size=16)
    args.update(kw)
    return rank(folder, **args)


def test_rank_table_files_skips_and_cache(store_env, image_folder, tmp_path):
    table = _rank(image_folder, tmp_path / "r1")
    assert [r["rank"] for r in table.rows] == [1, 2, 3, 4]
    assert {(r["model"], r["image_size"]) for r in table.rows} == {
        (m, s) for m in ("test_resnet", "test_efficientnet") for s in (32, 48)}
    combined = [r["combined"] for r in table.rows]
    assert combined == sorted(combined, reverse=True)
    for r in table.rows:
        for key in ("logme", "hscore", "nleep", "linear_probe", "knn", "images_per_s", "params_m"):
            assert r[key] is not None, key
        assert not r["cache_hit"]
    # test_vit has no weights in the store: listed as skipped with the fix, never dropped silently
    assert {s["model"] for s in table.skipped} == {"test_vit"}
    assert all("headstart weights import" in s["reason"] for s in table.skipped)
    saved = json.loads((tmp_path / "r1" / "rank.json").read_text())
    assert saved["rows"][0]["model"] == table.rows[0]["model"] and saved["dataset"]["fingerprint"]
    assert (tmp_path / "r1" / "rank.csv").read_text().startswith("rank,model,image_size,logme")
    assert (tmp_path / "r1" / "rank.png").stat().st_size > 0
    assert "test_vit" in str(table)

    again = _rank(image_folder, tmp_path / "r2")  # same seed: same order and scores, from the cache
    assert all(r["cache_hit"] for r in again.rows)
    strip = ("seconds", "cache_hit", "images_per_s", "combined", "rank", "predicted_relative_accuracy")
    key = lambda r: (r["model"], r["image_size"])  # noqa: E731
    first = {key(r): {k: v for k, v in r.items() if k not in strip} for r in table.rows}
    second = {key(r): {k: v for k, v in r.items() if k not in strip} for r in again.rows}
    assert first == second
    assert [key(r) for r in table.rows] == [key(r) for r in again.rows]


def test_bad_inputs(store_env, image_folder, tmp_path):
    with pytest.raises(ConfigError, match="Unknown model 'test_resnt'.*Did you mean 'test_resnet'"):
        _rank(image_folder, tmp_path / "x", candidates="test_resnt")
    with pytest.raises(ConfigError, match=r"budget of 0.01s is too small.*Pass --budget \d+s"):
        _rank(image_folder, tmp_path / "x", budget=0.01)
    with pytest.raises(ConfigError, match="'image_sizes' parameter must hold ints"):
        _rank(image_folder, tmp_path / "x", image_sizes="32,big")
    with pytest.raises(ConfigError, match="Unknown estimator 'logm'.*Did you mean 'logme'"):
        _rank(image_folder, tmp_path / "x", estimators=["logm"])
    with pytest.raises(ConfigError, match=r"The 'max_images' parameter must be an int in \[2, inf\)\. Got 1\."):
        _rank(image_folder, tmp_path / "x", max_images=1)


def test_one_class_dataset_is_an_error(store_env, tmp_path):
    folder = write_synthetic_folder(tmp_path / "one", {"only": 12, "empty": 0})
    with pytest.raises((DataError, ConfigError), match="class"):
        _rank(folder, tmp_path / "x")


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("1.5h", 5400), (45, 45)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "0s", "-5m", True])
def test_parse_budget_errors(bad):
    with pytest.raises(ConfigError, match="'budget' parameter must be"):
        parse_budget(bad)


_DURATION_MESSAGE = r"parameter must be a duration like '90s', '20m', '1h' or '1h30m' \(or a number of seconds\)\."


def test_budget_reads_durations_as_tune_timeout_does():
    from headstart.tuning.progress import parse_duration

    assert parse_budget("1h30m") == parse_duration("1h30m") == 5400
    for text in ("90s", "2m30s", "1.5h", "45", 12.5):
        assert parse_budget(text) == parse_duration(text)
    with pytest.raises(ConfigError, match=r"The 'budget' " + _DURATION_MESSAGE + r" Got '1h30x'\."):
        parse_budget("1h30x")
    with pytest.raises(ConfigError, match=r"The 'timeout' " + _DURATION_MESSAGE + r" Got '1h30x'\."):
        parse_duration("1h30x")


def test_rank_command_accepts_a_compound_budget(tmp_path, monkeypatch, capsys):
    """`headstart rank --budget 1h30m` reaches the runner with 5400 s; a bad one exits 2 with tune's message."""
    from headstart import cli
    from headstart.select import runner

    seen = {}

    def fake_run_candidates(index, pairs, *, budget_s, **kwargs):
        seen["budget_s"] = budget_s
        return [], [], {"n_images": 0}

    monkeypatch.setattr(runner, "run_candidates", fake_run_candidates)
    folder = write_synthetic_folder(tmp_path / "data", {"a": 6, "b": 6}, size=16)
    args = ["rank", str(folder), "--candidates", "test_resnet", "--device", "cpu", "--out", str(tmp_path / "out"),
            "--quiet"]
    cli.main([*args, "--budget", "1h30m"])
    assert seen == {"budget_s": 5400}
    capsys.readouterr()
    assert cli.main([*args, "--budget", "1h30x"]) == 2
    assert "headstart rank: error: The 'budget' parameter must be a duration like '90s'" in capsys.readouterr().err


def test_select_package_names_load_lazily():
    code = "import headstart.select as s; print(s.parse_budget('1h30m'), s.RankTable.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["5400.0", "RankTable"], out.stderr[-500:]


def test_stratified_order_prefixes_are_balanced_and_seeded():
    labels = [0] * 40 + [1] * 20
    order = stratified_order(labels, seed=1)
    assert sorted(order) == list(range(60)) and order == stratified_order(labels, seed=1)
    first = [labels[i] for i in order[:15]]
    assert 8 <= first.count(0) <= 12
    assert order != stratified_order(labels, seed=2)


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "headstart", "rank", *args], capture_output=True, text=True,
                          env=env, timeout=240)


def test_cli(store_env, image_folder, tmp_path):
    import os

    env = {**os.environ, "HEADSTART_WEIGHTS_DIR": str(store_env), "HEADSTART_FEATURES_DIR": str(tmp_path / "f")}
    out = tmp_path / "cli"
    proc = _cli(str(image_folder), "--candidates", "test_resnet,test_efficientnet", "--image-sizes", "32",
                "--budget", "5m", "--device", "cpu", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "best accuracy" in proc.stderr and (out / "rank.json").is_file()
    assert "│ test_efficientnet" in proc.stderr and "…" not in proc.stderr  # a log gets the whole table
    rows = json.loads((out / "rank.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"test_resnet", "test_efficientnet"}
    bad = _cli(str(image_folder), "--budget", "soon", "--out", str(out), env=env)
    assert bad.returncode == 2 and "'budget' parameter must be a duration" in bad.stderr


@pytest.mark.parametrize("classes, expected", [(2, 200), (10, 200), (50, 500), (100, 1000), (500, 1000)])
def test_default_sample_is_ten_a_class_between_200_and_1000(classes, expected):
    assert default_max_images(classes) == expected


def test_without_sizes_each_candidate_gets_the_size_fit_would_choose(store_env, tmp_path):
    # 20 px images, models pretrained at 160 px: fit's rule gives 2 x 20 = 40 -> the floor, 96
    folder = write_synthetic_folder(tmp_path / "small", {"a": 12, "b": 12}, size=20)
    table = _rank(folder, tmp_path / "r", candidates="test_resnet", image_sizes=None)
    assert [(r["model"], r["image_size"]) for r in table.rows] == [("test_resnet", 96)]
