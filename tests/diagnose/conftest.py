"""Real images for the doctor tests: scikit-learn's handwritten digits written as PNGs (32 px, and
coloured unless asked for grayscale), with planted problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def digit_images(digits=(0, 1, 2, 3), per_class: int = 30, size: int = 32, colour: bool = True, seed: int = 0):
    """[(class name, HxWx3 uint8 array)], ``per_class`` real digits of each class."""
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    out = []
    for d in digits:
        where = np.flatnonzero(data.target == d)[:per_class]
        for i in where:
            ink = data.images[i] / 16.0
            img = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)) / 255.0
            if colour:
                fg, bg = rng.uniform(0, 90, 3), rng.uniform(150, 255, 3)  # dark ink on a light tinted paper
            else:
                fg, bg = np.full(3, 255.0), np.zeros(3)
            rgb = img[..., None] * fg + (1 - img[..., None]) * bg
            out.append((f"digit{d}", np.clip(rgb, 0, 255).astype(np.uint8)))
    return out


def write_images(root: Path, images, *, prefix: str = "img") -> list[Path]:
    paths = []
    for k, (name, array) in enumerate(images):
        path = root / name / f"{prefix}_{k:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def digits_folder(tmp_path) -> Path:
    root = tmp_path / "digits"
    write_images(root, digit_images())
    return root


XSS_CLASSES = ("<script>", "<img src=x onerror=alert(1)>")
_RUNS: dict[str, Path] = {}


def fitted_run(store: Path, tmp_root: Path) -> Path:
    """One small real fit (test_resnet, 32 px) shared by the doctor and report tests; two of its class
    names are markup, for the escaping tests. Cached per session (a fit is the slow part)."""
    key = str(store)
    if key not in _RUNS:
        import os

        import headstart

        root = tmp_root / "digits_run_data"
        images = digit_images(per_class=10)
        rename = {"digit0": XSS_CLASSES[0], "digit1": XSS_CLASSES[1]}
        write_images(root, [(rename.get(n, n), a) for n, a in images])
        old = os.environ.get("HEADSTART_WEIGHTS_DIR")
        os.environ["HEADSTART_WEIGHTS_DIR"] = str(store)
        try:
            result = headstart.fit(root, model="test_resnet", image_size=32, batch_size=8, epochs=1, probe_epochs=2,
                                   strategy="lp-ft", device="cpu", verbose=False, out=tmp_root / "run")
        finally:
            if old is None:
                os.environ.pop("HEADSTART_WEIGHTS_DIR", None)
            else:
                os.environ["HEADSTART_WEIGHTS_DIR"] = old
        _RUNS[key] = result.run_dir
    return _RUNS[key]


@pytest.fixture(scope="session")
def run_dir(tiny_weights_store, tmp_path_factory) -> Path:
    return fitted_run(tiny_weights_store, tmp_path_factory.mktemp("fitted"))
