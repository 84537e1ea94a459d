"""Shared fixtures: small synthetic image folders whose classes are learnable (a colour and a
pattern per class, plus noise), and a weights store holding a tiny timm model's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA; without it they are skipped with the reason."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none available)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


PALETTE = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (200, 200, 40), (160, 40, 200)]


def write_synthetic_folder(root: Path, classes: dict[str, int], size: int = 40, seed: int = 0, split_folders: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    for c, (name, count) in enumerate(classes.items()):
        for i in range(count):
            base = np.array(PALETTE[c % len(PALETTE)], dtype=np.float32)
            img = base + rng.normal(0, 40, size=(size, size, 3))
            if c % 2:  # stripes for odd classes
                img[:, ::4] *= 0.4
            img = np.clip(img, 0, 255).astype(np.uint8)
            if split_folders:
                split = "train" if i < count * 0.6 else ("val" if i < count * 0.8 else "test")
                path = root / split / name / f"{name}_{i:03d}.png"
            else:
                path = root / name / f"{name}_{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path)
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_synthetic_folder(tmp_path / "imgs", {"cat": 16, "dog": 16, "fox": 16})


@pytest.fixture
def binary_folder(tmp_path) -> Path:
    return write_synthetic_folder(tmp_path / "bin", {"no": 16, "yes": 16})


@pytest.fixture(scope="session")
def tiny_weights_store(tmp_path_factory) -> Path:
    """A weights store with random-init ``test_resnet`` weights imported the way a user would."""
    import timm
    import torch

    from headstart.models.importer import import_weights

    root = tmp_path_factory.mktemp("store")
    torch.manual_seed(0)
    src = root / "test_resnet_src.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), src)
    import_weights(src, "test_resnet", mapping="strict", store_root=root / "weights")
    return root / "weights"


@pytest.fixture
def weights_env(tiny_weights_store, monkeypatch) -> Path:
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(tiny_weights_store))
    return tiny_weights_store


def real_weights_store() -> Path | None:
    """The store with real ImageNet weights (filled by `make weights`), or None."""
    from headstart.models.store import weights_dir

    root = weights_dir()
    return root if (root / "mobilenetv2_100").is_dir() else None
