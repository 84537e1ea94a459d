"""Device selection and the speed settings: AMP on CUDA; channels_last on CUDA, and on the CPU for
models it speeds up there (:meth:`DeviceSettings.for_model`)."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from headstart.errors import ConfigError

__all__ = ["DeviceSettings", "resolve_device"]


@dataclass(frozen=True)
class DeviceSettings:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    channels_last: bool
    # channels_last was asked for on a CPU: for_model turns it on for a model where oneDNN runs it faster
    cpu_channels_last: bool = False

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def needs_grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def for_model(self, model: torch.nn.Module) -> "DeviceSettings":
        """These settings for training and evaluating ``model``. On the CPU, channels_last goes on
        for a model without LayerNorm: with oneDNN's channels_last convolutions a training step of
        MobileNetV2 ran 1.3-1.4x, EfficientNet-Lite0 1.3-1.7x, ResNet 1.1-1.3x and an FCOS detector
        1.07x as fast on this project's CPU (inference 1.2-1.7x), VGG16 trained at the same speed;
        ConvNeXt (LayerNorm over channels) and ViT gained nothing (0.93-1.02x), so they stay as they
        are (BENCHMARKS.md, "channels_last on the CPU")."""
        if self.device.type != "cpu" or not self.cpu_channels_last or self.channels_last:
            return self
        if any(isinstance(m, torch.nn.LayerNorm) for m in model.modules()):
            return self
        return dataclasses.replace(self, channels_last=True)

    def prepare(self, model: torch.nn.Module) -> "DeviceSettings":
        """:meth:`for_model`, with ``model`` put in channels_last (in place) when that is on, before
        anything is computed from it (the trainer keeps the format)."""
        dev = self.for_model(model)
        if dev.channels_last:
            model.to(memory_format=torch.channels_last)
        return dev

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=True)


def resolve_device(name: str = "auto", *, amp: bool = True, channels_last: bool = True) -> DeviceSettings:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; on several processes CUDA is the
    process's own GPU, ``cuda:LOCAL_RANK`` (:func:`headstart.engine.distributed.init_process_group`). AMP (bf16 where supported, else fp16
    with a grad scaler) applies on CUDA only; channels_last on CUDA, and on the CPU once
    :meth:`DeviceSettings.for_model` has seen the model."""
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
    return DeviceSettings(device, amp_dtype, channels_last and device.type == "cuda",
                          cpu_channels_last=channels_last and device.type == "cpu")
