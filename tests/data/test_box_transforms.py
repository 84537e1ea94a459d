"""Augmentations move the boxes with the image (torchvision transforms v2 on tv_tensors)."""

import pytest
import torch

from headstart.data.box_transforms import BOX_PRESETS, build_box_transform, resolve_box_preset
from headstart.errors import ConfigError


def _sample():
    from torchvision import tv_tensors

    image = torch.zeros(3, 60, 80, dtype=torch.uint8)
    image[:, 10:30, 20:50] = 255  # a white object exactly where the box is
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[20.0, 10.0, 50.0, 30.0]]), format="XYXY", canvas_size=(60, 80))
    return tv_tensors.Image(image), {"boxes": boxes, "labels": torch.tensor([1])}


@pytest.mark.parametrize("preset", BOX_PRESETS)
def test_boxes_follow_the_object(preset):
    torch.manual_seed(0)
    tf = build_box_transform(preset, fill=(0, 0, 0))
    for _ in range(20):
        image, target = tf(*_sample())
        assert image.dtype == torch.float32 and image.max() <= 1.0
        for box in target["boxes"]:
            x1, y1, x2, y2 = [int(round(float(v))) for v in box]
            inside = image[0, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
            if preset in ("none", "light"):  # geometry only: the object is white inside its box
                assert inside.numel() and inside.mean() > 0.8
        assert len(target["boxes"]) == len(target["labels"])


def test_hflip_moves_the_box():
    image, target = build_box_transform("light", hflip=1.0, zoom=0.0, shift=0.0, fill=(0, 0, 0))(*_sample())
    assert target["boxes"][0].tolist() == pytest.approx([30.0, 10.0, 60.0, 30.0])


def test_presets_by_data_size_and_bad_names():
    assert resolve_box_preset("auto", 400) == "light" and resolve_box_preset("medium", 50_000) == "medium"
    with pytest.raises(ConfigError, match=r"The 'augment.preset' parameter must be one of .* Got 'medum'"):
        resolve_box_preset("medum", 10)
