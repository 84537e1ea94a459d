"""Pairing tensors by order with the one reshape allowed: a Linear and the Conv2d of the same layer."""

import pytest
import torch

from headstart.errors import WeightsMismatchError
from headstart.models.mapping import MapReport, is_reshape_of_same_layer, map_by_order, map_strict


@pytest.mark.parametrize(
    "src, tgt, same",
    [
        ((4096, 25088), (4096, 512, 7, 7), True),  # torchvision classifier.0 -> timm pre_logits.fc1
        ((4096, 4096), (4096, 4096, 1, 1), True),  # classifier.3 -> pre_logits.fc2 (1x1 conv)
        ((4096, 512, 7, 7), (4096, 25088), True),  # and back
        ((25088, 4096), (4096, 512, 7, 7), False),  # a transposed Dense kernel is not a reshape
        ((4096, 25088), (2048, 1024, 7, 7), False),  # same element count, other layer
        ((64, 3, 3, 3), (64, 3, 9, 1), False),  # two convs of different kernels
        ((10,), (10, 1), False),
    ],
)
def test_is_reshape_of_same_layer(src, tgt, same):
    assert is_reshape_of_same_layer(src, tgt) is same


def test_linear_into_conv_keeps_the_flatten_order():
    """torch.flatten of a (C, H, W) map orders the Linear's inputs C, H, W: the reshaped conv
    over the same map gives the same output."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(8 * 3 * 3, 5)
    conv = torch.nn.Conv2d(8, 5, 3)
    src = {"fc.weight": linear.weight.data, "fc.bias": linear.bias.data}
    mapped, report = map_by_order(src, conv.state_dict(), "f.pth", "m")
    conv.load_state_dict(mapped)
    x = torch.randn(2, 8, 3, 3)
    assert torch.allclose(conv(x).flatten(1), linear(x.flatten(1)), atol=1e-6)
    assert report.counts == {"by reshape": 1, "by order": 1}
    assert report.details == ["fc.weight (5, 72) -> weight (5, 8, 3, 3)"]
    assert report.summary() == "by order: 1, by reshape: 1"


def test_by_order_refuses_an_equal_size_tensor_of_another_layer():
    src = {"a.weight": torch.zeros(4, 6)}
    tgt = {"b.weight": torch.zeros(6, 4)}
    with pytest.raises(
        WeightsMismatchError,
        match=r"tensor #0: the file's 'a\.weight' has shape \(4, 6\) but"
        r" timm's 'b\.weight' has shape \(6, 4\)\. Both hold 24 values,"
        r" but they are not a Linear and a Conv2d of the same layer",
    ):
        map_by_order(src, tgt, "f.pth", "m")


def test_by_order_refuses_other_shapes_naming_both_tensors():
    with pytest.raises(
        WeightsMismatchError,
        match=r"'x' has shape \(3,\) but timm's 'y' has shape \(4,\)\. Only a"
        r" Linear \(out, C\*kH\*kW\) and a Conv2d",
    ):
        map_by_order({"x": torch.zeros(3)}, {"y": torch.zeros(4)}, "f.pth", "m")


def test_strict_report_counts_by_name():
    sd = {"w": torch.zeros(2), "bn.num_batches_tracked": torch.tensor(0)}
    mapped, report = map_strict(sd, sd, "f", "m")
    assert list(mapped) == ["w"] and report.counts == {"by name": 1}
    assert MapReport().summary() == "nothing"
