"""Fixtures for headstart.models tests: isolated weights store and caches, tiny timm models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """Never read the user's real store, Hugging Face cache or torch hub cache."""
    import huggingface_hub.constants as hf_constants

    hf = tmp_path / "hf-cache"
    hub = tmp_path / "torch-hub"
    hf.mkdir()
    hub.mkdir()
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(tmp_path / "default-store"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    yield


@pytest.fixture
def store_root(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def hf_cache() -> Path:
    import huggingface_hub.constants as hf_constants

    return Path(hf_constants.HF_HUB_CACHE)


from tests.models.models_helpers import tiny_state_dict  # noqa: E402


@pytest.fixture
def resnet_sd() -> dict[str, torch.Tensor]:
    return tiny_state_dict("test_resnet", seed=1)


