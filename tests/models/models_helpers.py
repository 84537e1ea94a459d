"""Helpers shared by the headstart.models tests (imported as a top-level module by pytest)."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_state_dict(name: str = "test_resnet", seed: int = 0) -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


def save_pth(sd, path: Path) -> Path:
    torch.save(sd, path)
    return path


def save_safetensors(sd, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def renamed(sd: dict) -> dict:
    """Same tensors in the same order under other names (like a torchvision file)."""
    return {f"features.{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(sd.items())}
