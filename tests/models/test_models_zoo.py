import subprocess
import sys

import pytest

from headstart.errors import ConfigError
from headstart.models import choice as auto_choice
from headstart.models import zoo
from headstart.models.sources import KNOWN_SOURCES


def test_check_model_name_accepts_architectures_and_tags():
    assert zoo.check_model_name("resnet50") == "resnet50"
    assert zoo.check_model_name("resnet50.a1_in1k") == "resnet50.a1_in1k"
    assert zoo.check_model_name(" test_resnet ") == "test_resnet"


def test_unknown_model_suggests_close_names():
    with pytest.raises(ConfigError, match=r"Unknown model 'mobilenetv2'\. Did you mean 'mobilenetv2_100'"):
        zoo.check_model_name("mobilenetv2")
    with pytest.raises(ConfigError, match="convnext_tiny"):
        zoo.check_model_name("convnxt_tiny")


def test_unknown_tag_lists_tags():
    with pytest.raises(ConfigError, match=r"Unknown pretrained tag 'a1_in1kk' for model 'resnet50'\. "
                                          r"Did you mean 'resnet50\.a1_in1k'"):
        zoo.check_model_name("resnet50.a1_in1kk")


@pytest.mark.parametrize("bad", ["", None, 3])
def test_model_name_must_be_a_string(bad):
    with pytest.raises(ConfigError, match="timm model name"):
        zoo.check_model_name(bad)


def test_candidates_match_timm_pretrained_cfgs():
    from timm.models import get_pretrained_cfg

    names = [c.name for c in zoo.CPU_CANDIDATES + zoo.GPU_CANDIDATES]
    assert len(names) == len(set(names))
    for model in KNOWN_SOURCES:
        assert model in names or model in zoo.FETCHABLE_NOT_RANKED
    for c in zoo.CPU_CANDIDATES + zoo.GPU_CANDIDATES:
        cfg = get_pretrained_cfg(c.name)
        assert cfg.tag == c.tag, c.name
        assert cfg.input_size[1] == c.input_size, c.name
        assert 50 < c.top1 < 90 and c.params_m > 0
    assert max(c.params_m for c in zoo.CPU_CANDIDATES) < 10
    assert zoo.candidates("cuda:0") is zoo.GPU_CANDIDATES
    assert zoo.candidates("cpu") is zoo.CPU_CANDIDATES


def _fake_store_file(root, model):
    folder = root / model
    folder.mkdir(parents=True)
    (folder / "0123456789abcdef.safetensors").write_bytes(b"x")


def test_auto_model_without_offline_weights_keeps_the_ideal_pick(store_root):
    choice = auto_choice.choose_model(100, "cpu", store_root)
    assert choice.name == "tf_efficientnet_lite2" and not choice.offline
    assert "headstart weights fetch" in choice.reason
    assert auto_choice.auto_model(10_000, "cpu", store_root) == "tf_efficientnet_lite0"
    assert auto_choice.auto_model(100, "cuda", store_root) == "convnext_tiny"
    assert auto_choice.auto_model(100_000, "cuda:1", store_root) == "convnext_small"


def test_auto_model_prefers_offline_weights(store_root):
    _fake_store_file(store_root, "tf_efficientnet_lite0")
    choice = auto_choice.choose_model(100, "cpu", store_root)
    assert choice.name == "tf_efficientnet_lite0" and choice.offline
    assert "would be tf_efficientnet_lite2" in choice.reason
    # on a GPU with only CPU-sized weights offline, use them rather than fail later
    assert auto_choice.auto_model(100, "cuda", store_root) == "tf_efficientnet_lite0"
    _fake_store_file(store_root, "tf_efficientnet_lite2")
    assert auto_choice.choose_model(100, "cpu", store_root).reason.endswith("weights found offline.")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", ""])
def test_auto_model_rejects_bad_device(device, store_root):
    with pytest.raises(ConfigError, match="'device' parameter must be"):
        auto_choice.auto_model(10, device, store_root)


def test_auto_model_rejects_bad_n_train(store_root):
    with pytest.raises(ConfigError, match="'n_train' parameter"):
        auto_choice.auto_model(-1, "cpu", store_root)


def test_importing_the_package_does_not_import_torch():
    code = ("import sys, headstart.models, headstart.models.zoo, headstart.models.choice, headstart.models.store,"
            " headstart.models.sources; print('torch' in sys.modules, 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
