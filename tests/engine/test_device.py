"""Device settings: channels_last on the CPU goes on per model (DeviceSettings.for_model)."""

import pytest
import timm
import torch

from headstart.engine.device import resolve_device


def test_cpu_channels_last_waits_for_the_model():
    dev = resolve_device("cpu")
    assert not dev.channels_last and dev.cpu_channels_last
    x = dev.to_device(torch.zeros(2, 3, 8, 8))
    assert x.is_contiguous()  # nothing converted before a model has been seen


@pytest.mark.parametrize(("name", "expected"), [("test_resnet", True), ("test_efficientnet", True),
                                                ("test_convnext", False), ("test_vit", False)])
def test_cpu_channels_last_only_for_models_without_layernorm(name, expected):
    dev = resolve_device("cpu").for_model(timm.create_model(name, num_classes=3))
    assert dev.channels_last is expected
    x = dev.to_device(torch.zeros(2, 3, 8, 8))
    assert x.is_contiguous() is not expected
    assert x.is_contiguous(memory_format=torch.channels_last) is expected


def test_channels_last_off_stays_off():
    dev = resolve_device("cpu", channels_last=False).for_model(timm.create_model("test_resnet", num_classes=3))
    assert not dev.channels_last


def test_channels_last_model_gives_the_same_logits():
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=4).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        dev = resolve_device("cpu").for_model(model)
        out = model.to(memory_format=torch.channels_last)(dev.to_device(x))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
