"""Device selection and the CUDA-only speed settings (AMP, channels_last)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from headstart.errors import ConfigError

__all__ = ["DeviceSettings", "resolve_device"]


@dataclass(frozen=True)
class DeviceSettings:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    channels_last: bool

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def needs_grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=True)


def resolve_device(name: str = "auto", *, amp: bool = True, channels_last: bool = True) -> DeviceSettings:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; on several processes CUDA is the
    process's own GPU, ``cuda:LOCAL_RANK`` (:func:`headstart.engine.distributed.init_process_group`). AMP (bf16 where supported, else fp16
    with a grad scaler) and channels_last apply on CUDA only: on the CPU they slow training down."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"The 'train.device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Got {name!r}."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"The 'train.device' parameter is {name!r} but no CUDA device is available."
            " Use --device cpu or --device auto."
        )
    if device.type == "cuda":
        from headstart.engine.distributed import world

        if world().is_distributed:  # one GPU per process: cuda:LOCAL_RANK, set when the process group started
            device = torch.device("cuda", torch.cuda.current_device())
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"The 'train.device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Got {name!r}."
        )
    amp_dtype = None
    if device.type == "cuda" and amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DeviceSettings(device, amp_dtype, channels_last and device.type == "cuda")
