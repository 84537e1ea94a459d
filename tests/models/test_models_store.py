import json
import os

import pytest
import torch

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError
from headstart.models import store
from tests.models.models_helpers import save_pth, save_safetensors


def test_weights_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(tmp_path / "env"))
    assert store.weights_dir() == tmp_path / "env"
    assert store.weights_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("HEADSTART_WEIGHTS_DIR")
    assert store.weights_dir() == store.Path("~/.cache/headstart/weights").expanduser()


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "index.json"
    store.atomic_write(target, lambda p: p.write_text("old"))
    assert target.read_text() == "old"

    def broken(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.atomic_write(target, broken)
    assert target.read_text() == "old"
    assert os.listdir(target.parent) == ["index.json"]  # no temp file left behind


def test_index_add_replace_remove(store_root):
    (store_root / "m").mkdir(parents=True)
    (store_root / "m" / "aa.safetensors").write_bytes(b"1")
    entry = {"model": "m", "file": "m/aa.safetensors", "sha256": "aa", "imported_at": "1"}
    store.add_entry(entry, store_root)
    store.add_entry({**entry, "imported_at": "2"}, store_root)  # same model+sha: replaced
    data = json.loads((store_root / "index.json").read_text())
    assert [e["imported_at"] for e in data["entries"]] == ["2"]
    assert store.entries_for("m", store_root)[0]["path"] == str(store_root / "m" / "aa.safetensors")
    store.remove_entry("m", "aa", store_root)
    assert store.read_index(store_root)["entries"] == []
    assert not (store_root / "m" / "aa.safetensors").exists()


def test_malformed_index_is_a_clear_error(store_root):
    store_root.mkdir()
    (store_root / "index.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read.*re-import"):
        store.read_index(store_root)


def test_entries_for_finds_unindexed_files(store_root):
    (store_root / "m").mkdir(parents=True)
    (store_root / "m" / "bb.safetensors").write_bytes(b"1")
    assert [e["file"] for e in store.entries_for("m", store_root)] == ["m/bb.safetensors"]
    assert store.entries_for("other", store_root) == []


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
])
def test_load_unwraps_common_checkpoint_wrappers(tmp_path, resnet_sd, wrap):
    path = save_pth(wrap(resnet_sd), tmp_path / "w.pth")
    loaded = store.load_state_dict_file(path)
    assert list(loaded) == list(resnet_sd)
    assert torch.equal(loaded["conv1.0.weight"], resnet_sd["conv1.0.weight"])


def test_load_safetensors(tmp_path, resnet_sd):
    path = save_safetensors(resnet_sd, tmp_path / "w.safetensors")
    assert set(store.load_state_dict_file(path)) == set(resnet_sd)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(WeightsMismatchError, match="weights_only=True"):
        store.load_state_dict_file(path)


def test_load_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        store.load_state_dict_file(tmp_path / "nope.pth")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ConfigError, match="must be one of .safetensors"):
        store.load_state_dict_file(tmp_path / "w.txt")
    torch.save({"epoch": 3, "name": "x"}, tmp_path / "meta.pth")
    with pytest.raises(WeightsMismatchError, match="holds no tensors"):
        store.load_state_dict_file(tmp_path / "meta.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsMismatchError, match="not a state dict"):
        store.load_state_dict_file(tmp_path / "list.pth")


def test_list_weights_shows_fetchable_models(store_root):
    rows = store.list_weights(store_root)
    assert {r["model"] for r in rows} == {"mobilenetv2_100", "tf_efficientnet_lite0", "tf_efficientnet_lite1",
                                          "tf_efficientnet_lite2"}
    assert {r["status"] for r in rows} == {"fetchable"}
    table = store.format_weights_table(rows)
    assert table.splitlines()[0].split() == ["MODEL", "STATUS", "SHA256", "SIZE", "IMPORTED", "MAPPED", "PREPROCESSING", "SOURCE"]
    assert "headstart weights fetch" in table
    assert store.format_weights_table([]) == "No weights stored."
