"""Synthetic datasets for the data-layer tests: tiny images written with Pillow into tmp_path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from headstart.config import DataConfig

_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (40, 200, 200)]


def write_image(path: Path, size=(40, 48), colour=(128, 128, 128), seed: int = 0, fmt=None) -> Path:
    """A deterministic noisy image of ``size`` = (width, height), mostly ``colour``."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = np.array(colour, dtype=np.int16).reshape(1, 1, 3)
    noise = rng.integers(-30, 30, size=(height, width, 3), dtype=np.int16)
    array = np.clip(base + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def tree_digest(root: Path) -> str:
    """Hash of every file's relative path, bytes and mtime under ``root`` (to prove read-only)."""
    digest = hashlib.sha256()
    for current, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files + dirs):
            path = Path(current) / name
            digest.update(path.relative_to(root).as_posix().encode())
            if path.is_file():
                digest.update(path.read_bytes())
                digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


@pytest.fixture
def make_image_folder(tmp_path) -> Callable[..., Path]:
    """Factory: ``make_image_folder(classes={'cat': 5, 'dog': 5}, size=(40, 48),
    layout='class-folders' | 'split-folders', splits={'train': {...}, 'val': {...}}, ext='.png')``.

    ``split-folders`` uses ``classes`` for every split in ``splits`` (default train and val) unless
    ``splits`` maps split folder names to their own class counts.
    """
    counter = {"n": 0}

    def make(
        classes: dict[str, int] | None = None,
        size=(40, 48),
        layout: str = "class-folders",
        splits=None,
        ext: str = ".png",
        name: str | None = None,
    ) -> Path:
        counter["n"] += 1
        root = tmp_path / (name or f"dataset{counter['n']}")
        classes = {"cat": 5, "dog": 5} if classes is None else classes
        if layout == "class-folders":
            groups = {"": classes}
        elif layout == "split-folders":
            if splits is None:
                splits = ("train", "val")
            groups = splits if isinstance(splits, dict) else {s: classes for s in splits}
        else:
            raise ValueError(layout)
        seed = 0
        for split, per_class in groups.items():
            for c_index, (cls, count) in enumerate(sorted(per_class.items())):
                folder = root / split / cls if split else root / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    seed += 1
                    write_image(folder / f"{cls}_{i:03d}{ext}", size, _COLOURS[c_index % 5], seed)
        return root

    return make


@pytest.fixture
def data_cfg() -> Callable[..., DataConfig]:
    def make(path, **kwargs) -> DataConfig:
        return DataConfig(path=path, **kwargs)

    return make


@pytest.fixture
def image_writer() -> Callable[..., Path]:
    """``write_image(path, size=(w, h), colour=(r, g, b), seed=0)`` as a fixture."""
    return write_image


@pytest.fixture
def digest_tree() -> Callable[[Path], str]:
    return tree_digest
