"""Regenerate examples/faces/: scikit-image's faces-versus-non-faces subset (real photos).

`skimage.data.lfw_subset()` ships inside the scikit-image wheel: 200 grayscale 25x25 crops, the first
100 faces from Labeled Faces in the Wild, the last 100 non-face patches. Written as PNG files into
one folder per class, the layout `headstart fit` reads.

    python examples/make_faces.py [--out examples/faces]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "faces"))
    args = parser.parse_args()
    from skimage.data import lfw_subset

    images = lfw_subset()  # float64 in [0, 1], (200, 25, 25)
    out = Path(args.out)
    for i, img in enumerate(images):
        label = "face" if i < 100 else "non_face"
        path = out / label / f"{label}_{i % 100:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L").save(path)
    print(f"wrote {len(images)} images to {out}")


if __name__ == "__main__":
    main()
