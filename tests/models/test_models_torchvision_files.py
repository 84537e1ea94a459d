"""torchvision's own vgg16-*.pth and resnet50-*.pth files into timm's vgg16 / resnet50.

The files are torchvision models with random weights (``weights=None``: nothing is downloaded),
saved as their state dicts under the names torchvision gives its files. Imported by order, the timm
model must compute the same logits as the torchvision model on the same input. (`fit --model
vgg16/resnet50` from the store: tests/models/test_models_keras.py.)
"""

import pytest
import torch
import torchvision

from headstart.models import importer
from headstart.models.build import create_model
from headstart.models.resolve import ResolvedWeights, resolve_weights


def _torchvision_file(name: str, tmp_path):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    path = tmp_path / f"{name}-0123abcd.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, mapped",
    [
        ("vgg16", {"by order": 30, "by reshape": 2}),
        ("resnet50", {"by order": 267}),
    ],
)
def test_torchvision_file_gives_torchvision_logits(name, mapped, tmp_path, store_root):
    reference, path = _torchvision_file(name, tmp_path)
    record = importer.import_weights(path, name, mapping="by-order", store_root=store_root)
    assert record.mapped == mapped and record.preprocessing is None
    if name == "vgg16":
        assert "classifier.0.weight (4096, 25088) -> pre_logits.fc1.weight (4096, 512, 7, 7)" in record.notes
    weights = resolve_weights(name, store_root=store_root)
    assert weights.source == "store" and weights.path == record.path
    model = create_model(
        name, 1000, weights=ResolvedWeights(name, "store", record.path, record.sha256), keep_head=True
    ).eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)  # VGG's adaptive pooling makes any size >= 32 work for both
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
