"""What a candidate costs on this device: measured inference images/s and parameter count."""

from __future__ import annotations

import time

__all__ = ["count_params", "measure_throughput"]


def count_params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def measure_throughput(model, image_size: int, dev, *, batch_size: int = 16, repeats: int = 2) -> float:
    """Images per second of the feature pass (``forward_features`` + pooling) at ``image_size``,
    in eval mode, measured on ``dev`` after one warm-up batch: the best of ``repeats`` timed
    batches (the least disturbed by other processes on a shared machine)."""
    import torch

    from headstart.tasks.classification.features import forward_features

    was_training = model.training
    model.eval()
    x = dev.to_device(torch.randn(batch_size, 3, image_size, image_size))
    best = float("inf")
    try:
        with torch.no_grad(), dev.autocast():
            forward_features(model, x)  # warm-up: allocations, cudnn autotuning
            for _ in range(repeats):
                if dev.is_cuda:
                    torch.cuda.synchronize(dev.device)
                t0 = time.perf_counter()
                forward_features(model, x)
                if dev.is_cuda:
                    torch.cuda.synchronize(dev.device)
                best = min(best, time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return batch_size / max(best, 1e-9)
