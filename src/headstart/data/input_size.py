"""The input size from the data, when the user gives none.

Upsampling a 28 px image to a model's 224 px costs about 5x the compute of 96 px and adds no
detail; a few times the native resolution is enough for the backbone's early strides not to throw
the content away. The rule, measured in BENCHMARKS.md ("Classification defaults"):

    size = min(pretrained size, max(SIZE_FLOOR, SIZE_PER_NATIVE_PX x median short side)),
    rounded up to a multiple of SIZE_MULTIPLE.
"""

from __future__ import annotations

import math

__all__ = ["SIZE_FLOOR", "SIZE_PER_NATIVE_PX", "SIZE_MULTIPLE", "input_size_for_data"]

SIZE_FLOOR = 96
"""Smallest input chosen: below it the backbone's 32x downsampling leaves a 2x2 feature map."""
SIZE_PER_NATIVE_PX = 2
"""Input pixels per native pixel of the median image's short side."""
SIZE_MULTIPLE = 32
"""The total stride of the usual CNN backbones: a multiple keeps every feature map whole."""


def input_size_for_data(pretrained_size: int, median_short_side: int | None) -> tuple[int, str]:
    """(input size, the reason in words) for images whose median short side is
    ``median_short_side`` px and a model pretrained at ``pretrained_size`` px."""
    if median_short_side is None:
        return pretrained_size, f"the model's pretrained size {pretrained_size}px (image sizes not measured)"
    want = max(SIZE_FLOOR, SIZE_PER_NATIVE_PX * median_short_side)
    want = int(math.ceil(want / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    if want >= pretrained_size:
        return pretrained_size, (
            f"the model's pretrained size {pretrained_size}px (images' median short side {median_short_side}px;"
            f" {SIZE_PER_NATIVE_PX}x that is not below it)"
        )
    return want, (
        f"{SIZE_PER_NATIVE_PX}x the images' median short side {median_short_side}px, at least {SIZE_FLOOR}px,"
        f" rounded up to a multiple of {SIZE_MULTIPLE} (below the model's pretrained {pretrained_size}px:"
        f" about {(pretrained_size / want) ** 2:.1f}x less compute per image)"
    )
