import pytest
import torch

from headstart.errors import ConfigError, WeightsMismatchError, WeightsNotFoundError
from headstart.models import build, importer
from headstart.models.resolve import ResolvedWeights, resolve_weights
from tests.models.models_helpers import renamed, save_pth, save_safetensors, tiny_state_dict


def _explicit(path, name="test_resnet"):
    return ResolvedWeights(name, "explicit", path, None)


@pytest.mark.parametrize("name, conv", [
    ("test_resnet", "conv1.0.weight"),
    ("test_efficientnet", "conv_stem.weight"),
    ("test_vit", "patch_embed.proj.weight"),
])
@pytest.mark.parametrize("num_outputs", [1, 2])
def test_backbone_loaded_new_head(tmp_path, store_root, name, conv, num_outputs):
    sd = tiny_state_dict(name, seed=3)
    importer.import_weights(save_safetensors(sd, tmp_path / "w.safetensors"), name, store_root=store_root)
    weights = resolve_weights(name, store_root=store_root)
    model = build.create_model(name, num_outputs, weights=weights, drop_rate=0.1)
    got = model.state_dict()
    assert torch.equal(got[conv], sd[conv])  # backbone really comes from the file
    backbone_keys = [k for k in sd if k in got and got[k].shape == sd[k].shape
                     and not k.startswith(model.pretrained_cfg["classifier"])]
    assert all(torch.equal(got[k], sd[k]) for k in backbone_keys)
    head = model.get_classifier()
    assert head.out_features == num_outputs
    assert model(torch.randn(2, 3, 64, 64) if name != "test_vit" else torch.randn(2, 3, 160, 160)).shape == (2, num_outputs)


def test_random_init_and_keep_head(tmp_path, resnet_sd):
    random = build.create_model("test_resnet", 3, weights=None)
    assert random.get_classifier().out_features == 3
    path = save_pth({"state_dict": resnet_sd}, tmp_path / "w.pth")
    kept = build.create_model("test_resnet", 1000, weights=_explicit(path), keep_head=True)
    assert torch.equal(kept.fc.weight, resnet_sd["fc.weight"])
    with pytest.raises(WeightsMismatchError, match="keep_head=True needs num_outputs=1000"):
        build.create_model("test_resnet", 2, weights=_explicit(path), keep_head=True)


def test_file_with_other_key_names_is_refused(tmp_path, resnet_sd):
    path = save_pth(renamed(resnet_sd), tmp_path / "tv.pth")
    with pytest.raises(WeightsMismatchError, match=r"does not load into timm's 'test_resnet'.*--map by-order"):
        build.create_model("test_resnet", 2, weights=_explicit(path))


def test_headless_file(tmp_path, resnet_sd):
    sd = {k: v for k, v in resnet_sd.items() if not k.startswith("fc.")}
    model = build.create_model("test_resnet", 2, weights=_explicit(save_pth(sd, tmp_path / "h.pth")))
    assert torch.equal(model.conv1[0].weight, sd["conv1.0.weight"])
    del sd["conv1.0.weight"]
    with pytest.raises(WeightsMismatchError, match="backbone tensors are not in the file"):
        build.create_model("test_resnet", 2, weights=_explicit(save_pth(sd, tmp_path / "h2.pth")))


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no longer exists"):
        build.create_model("test_resnet", 2, weights=_explicit(tmp_path / "gone.pth"))
    with pytest.raises(ConfigError, match=r"'num_outputs' parameter must be an int in \[1, inf\)"):
        build.create_model("test_resnet", 0, weights=None)
    with pytest.raises(ConfigError, match=r"'drop_rate' parameter must be a float in \[0, 1\)"):
        build.create_model("test_resnet", 2, weights=None, drop_rate=1.0)


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_vit", "mobilenetv3_small_050"])
def test_feature_dim_is_what_the_classifier_sees(name):
    model = build.create_model(name, 2, weights=None).eval()
    size = model.pretrained_cfg["input_size"][1]
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(torch.randn(1, 3, size, size)), pre_logits=True)
    assert feats.shape[-1] == build.feature_dim(model) == model.get_classifier().in_features


def test_head_and_backbone_parameters_partition_the_model():
    model = build.create_model("test_efficientnet", 2, weights=None)
    head = build.head_parameters(model)
    backbone = build.backbone_parameters(model)
    assert {id(p) for p in head} == {id(p) for p in model.classifier.parameters()}
    assert len(head) + len(backbone) == len(list(model.parameters()))


def test_set_trainable_head_only_freezes_backbone_and_batchnorm():
    torch.manual_seed(0)
    model = build.create_model("test_resnet", 2, weights=None)
    build.set_trainable(model, head_only=True)
    model.train()  # a training loop calls this every epoch; BN must stay frozen anyway
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    stats = [m.running_mean.clone() for m in bns]
    out = model(torch.randn(4, 3, 64, 64) * 3 + 1)
    out.sum().backward()
    assert all(not m.training for m in bns)
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bns, stats, strict=True))
    assert all(p.grad is None for p in build.backbone_parameters(model))
    assert all(p.grad is not None for p in build.head_parameters(model))
    assert all(not p.requires_grad for p in build.backbone_parameters(model))

    build.set_trainable(model, head_only=False)
    model.train()
    model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert all(m.training for m in bns)
    assert not torch.equal(bns[0].running_mean, stats[0])
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_batchnorm_keeps_affine_trainable_on_request():
    model = build.create_model("test_resnet", 2, weights=None)
    n = build.freeze_batchnorm(model, freeze_affine=False)
    assert n == len([m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]) > 0
    model.train()
    model(torch.randn(2, 3, 64, 64))
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not bn.training and bn.weight.requires_grad
    assert build.freeze_batchnorm(model) == n  # idempotent: one hook per layer
    assert build.unfreeze_batchnorm(model) == n
