"""Penultimate-layer features of a timm model: the linear probe's input, rank's and doctor's too."""

from __future__ import annotations

import torch

from headstart.engine.device import DeviceSettings

__all__ = ["extract_features", "forward_features"]

_FLUSH_ROWS = 16384  # features held on the device before a copy to the host (16k x 2048 fp32 = 128 MiB)


def forward_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features, through timm's ``forward_features`` + ``forward_head(pre_logits=True)``."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


@torch.no_grad()
def extract_features(model: torch.nn.Module, loader, dev: DeviceSettings, progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, D) float32 on the CPU and labels (N,) for every batch of ``loader``, model in eval
    mode; of the whole split, gathered from every rank, when ``loader`` yields one rank's share."""
    was_training = model.training
    model.eval()
    feats, on_device, labels = [], [], []
    rows = 0
    try:
        for images, target in loader:
            with dev.autocast():
                out = forward_features(model, dev.to_device(images))
            # Features stay on the device until _FLUSH_ROWS have piled up: a .cpu() per batch would
            # make the host wait for every batch and leave the GPU idle while the next one loads.
            on_device.append(out.float())
            rows += len(out)
            if rows >= _FLUSH_ROWS:
                feats.append(torch.cat(on_device).cpu())
                on_device, rows = [], 0
            labels.append(torch.as_tensor(target))
            if progress is not None:
                progress(len(images))
        if on_device:
            feats.append(torch.cat(on_device).cpu())
    finally:
        model.train(was_training)
    from headstart.engine.distributed import gather_rows

    return gather_rows(torch.cat(feats), loader), gather_rows(torch.cat(labels), loader)
