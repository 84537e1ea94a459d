from __future__ import annotations

import pytest
import torch

from headstart.config import AugmentConfig
from headstart.data.transforms import (
    Preprocessing,
    build_eval_transform,
    build_mix_collate,
    build_train_transform,
    load_resized,
    resolve_augment_preset,
)
from headstart.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_model():
    import timm

    return timm.create_model("test_resnet", pretrained=False)


def test_from_model_reads_pretrained_cfg(tiny_model):
    pre = Preprocessing.from_model(tiny_model)
    assert pre.input_size == 160 and pre.crop_pct == 0.95 and pre.interpolation == "bilinear"
    assert pre.mean == (0.5, 0.5, 0.5) and pre.crop_mode == "center"
    assert pre.resize_size == 168  # floor(160 / 0.95)
    assert Preprocessing.from_model(tiny_model, image_size=96).input_size == 96
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    assert Preprocessing.from_model(tiny_model.pretrained_cfg) == pre


def test_preprocessing_validation():
    with pytest.raises(
        ConfigError, match=r"'interpolation' parameter must be one of .*Got 'bicubik'.*Did you mean 'bicubic'"
    ):
        Preprocessing(224, interpolation="bicubik")
    with pytest.raises(ConfigError, match="crop_pct must be in"):
        Preprocessing(224, crop_pct=1.5)
    with pytest.raises(ConfigError, match="needs an 'input_size'"):
        Preprocessing.from_dict({"crop_pct": 0.9})


@pytest.mark.parametrize(
    "image_size, overlay, file_size",
    [
        (None, {}, (61, 47)),  # 160 px, crop 0.95, bilinear: upsampling
        (32, {"crop_pct": 0.875, "interpolation": "bicubic"}, (64, 50)),  # downsampling
    ],
)
def test_eval_pipeline_matches_timm(tmp_path, image_writer, image_size, overlay, file_size):
    import timm
    from timm.data import create_transform, resolve_data_config

    from headstart.data.decode import open_rgb

    model = timm.create_model("test_resnet", pretrained=False, pretrained_cfg_overlay=overlay)
    path = image_writer(tmp_path / "x.jpg", size=file_size, colour=(90, 160, 30), seed=4)
    pre = Preprocessing.from_model(model, image_size=image_size)
    ours = build_eval_transform(pre)(load_resized(path, pre))

    args = {"input_size": (3, image_size, image_size)} if image_size else {}
    reference = create_transform(**resolve_data_config(args, model=model), is_training=False)
    theirs = reference(open_rgb(path))
    assert ours.shape == theirs.shape == (3, pre.input_size, pre.input_size)
    assert ours.dtype == torch.float32
    assert (ours - theirs).abs().mean().item() < 0.02


def test_load_resized_shorter_side(tmp_path, image_writer):
    path = image_writer(tmp_path / "x.png", size=(60, 40))
    out = load_resized(path, Preprocessing(32, crop_pct=1.0))
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 48)
    squash = load_resized(path, Preprocessing(32, crop_pct=1.0, crop_mode="squash"))
    assert squash.shape == (3, 32, 32)
    border = load_resized(path, Preprocessing(32, crop_pct=1.0, crop_mode="border"))
    assert border.shape == (3, 21, 32)
    assert build_eval_transform(Preprocessing(32, crop_pct=1.0, crop_mode="border"))(border).shape == (3, 32, 32)


@pytest.mark.parametrize("preset", ["none", "light", "medium", "strong"])
@pytest.mark.parametrize("policy", ["trivial", "randaugment"])
def test_train_transform_shapes(preset, policy):
    pre = Preprocessing(24, crop_pct=0.875)
    aug = AugmentConfig(policy=policy, vflip=0.5, erasing=1.0)
    transform = build_train_transform(pre, aug, preset)
    image = torch.randint(0, 256, (3, 27, 35), dtype=torch.uint8)
    torch.manual_seed(0)
    out = transform(image)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    assert image.dtype == torch.uint8  # input untouched (cached tensors are shared)


def test_train_transform_is_random_eval_is_not():
    pre = Preprocessing(24)
    image = torch.randint(0, 256, (3, 27, 35), dtype=torch.uint8)
    train = build_train_transform(pre, AugmentConfig(), "medium")
    torch.manual_seed(1)
    a = train(image)
    torch.manual_seed(1)
    assert torch.equal(a, train(image))
    assert not torch.equal(a, train(image))
    evaluate = build_eval_transform(pre)
    assert torch.equal(evaluate(image), evaluate(image))


def test_resolve_augment_preset():
    assert resolve_augment_preset("auto", 50) == "light"
    assert resolve_augment_preset("auto", 100_000) == "light"
    assert resolve_augment_preset("strong", 10) == "strong"
    with pytest.raises(
        ConfigError, match=r"'augment.preset' parameter must be one of .*Got 'lite'.*Did you mean 'light'"
    ):
        resolve_augment_preset("lite", 10)
    with pytest.raises(ConfigError, match="preset"):
        build_train_transform(Preprocessing(24), AugmentConfig(), "auto")


def test_mix_collate_soft_targets():
    aug = AugmentConfig()
    assert build_mix_collate(aug, 3, "medium") is None
    assert build_mix_collate(AugmentConfig(mixup=0, cutmix=0), 3, "strong") is None
    for cfg in (aug, AugmentConfig(cutmix=0), AugmentConfig(mixup=0)):
        collate = build_mix_collate(cfg, 3, "strong")
        batch = [(torch.rand(3, 8, 8), i % 3) for i in range(6)]
        torch.manual_seed(0)
        images, targets = collate(batch)
        assert images.shape == (6, 3, 8, 8)
        assert targets.shape == (6, 3) and targets.dtype == torch.float32
        assert torch.allclose(targets.sum(dim=1), torch.ones(6))


def test_eval_parity_with_jpeg_draft_decoding(tmp_path):
    """Large JPEGs are decoded at reduced scale (libjpeg draft); the result still matches timm."""
    import timm
    from PIL import Image
    from skimage import data
    from timm.data import create_transform, resolve_data_config

    from headstart.data.decode import open_rgb

    path = tmp_path / "big.jpg"
    Image.fromarray(data.astronaut()).resize((900, 700), Image.BICUBIC).save(path, quality=90)
    model = timm.create_model("test_resnet", pretrained=False, pretrained_cfg_overlay={"crop_pct": 0.875})
    pre = Preprocessing.from_model(model, image_size=64)
    ours = build_eval_transform(pre)(load_resized(path, pre))
    reference = create_transform(**resolve_data_config({"input_size": (3, 64, 64)}, model=model))
    theirs = reference(open_rgb(path))
    assert (ours - theirs).abs().mean().item() < 0.02
