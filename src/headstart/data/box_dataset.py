"""Images with boxes for training and evaluating detectors, over the shared image cache.

Each item is ``(image, target)``: the cached image (longer side = input size, see
:mod:`headstart.data.box_transforms`) after the transform, and ``{'boxes': BoundingBoxes XYXY in
that image's pixels, 'labels': int64 (1..C, torchvision's convention; the task shifts them for
detectors without a background class), 'image_id': int,
'scale': float}`` where ``scale`` maps the boxes back to the original image (divide by it).
Boxes marked ``ignore`` (VOC difficult, COCO crowd) are not training targets; the evaluation
reads them from the samples themselves.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from headstart.data.dataset import ImageCache
from headstart.data.transforms import Preprocessing

__all__ = ["BoxDataset", "collate_boxes", "box_preprocessing"]


def box_preprocessing(image_size: int, mean, std, interpolation: str = "bilinear") -> Preprocessing:
    """Resize the longer side to ``image_size`` and keep the aspect ratio (no crop): what the
    cache stores for detection."""
    return Preprocessing(image_size, interpolation=interpolation, mean=tuple(mean), std=tuple(std), crop_pct=1.0,
                         crop_mode="border")


class BoxDataset(Dataset):
    def __init__(self, samples: Sequence, pre: Preprocessing, transform: Callable, cache: ImageCache | None = None):
        self.samples = list(samples)
        self.pre = pre
        self.transform = transform
        self.cache = cache if cache is not None else ImageCache("none")

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> torch.Tensor:
        return self.cache.get(self.samples[index].path, self.pre)

    def target(self, index: int, image: torch.Tensor) -> dict:
        from torchvision import tv_tensors

        sample = self.samples[index]
        height, width = image.shape[-2:]
        scale = width / sample.width
        keep = [i for i, ignored in enumerate(sample.ignore) if not ignored]
        boxes = torch.tensor([sample.boxes[i] for i in keep], dtype=torch.float32).reshape(-1, 4) * scale
        return {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.tensor([sample.labels[i] + 1 for i in keep], dtype=torch.int64),
            "image_id": sample.image_id,
            "scale": scale,
        }

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        image = tv_tensors.Image(self.load(index))
        target = self.target(index, image)
        image, target = self.transform(image, target)
        return image.as_subclass(torch.Tensor), target


def collate_boxes(batch):
    """Detectors take lists: images of different sizes, one target dict each."""
    images, targets = zip(*batch)
    return list(images), list(targets)
