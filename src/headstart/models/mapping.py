"""Pair the tensors of a weights file with timm's state dict: by name, by order, or by reshape.

``strict`` needs timm's key names; ``by-order`` pairs the tensors in order (num_batches_tracked
excluded) and checks every shape. A pair whose shapes differ is accepted by order in exactly one
case, when the two layers compute the same thing and one weight is a reshape of the other:

* a ``Linear`` weight ``(out, C*kH*kW)`` and a ``Conv2d`` weight ``(out, C, kH, kW)`` applied to a
  ``C x kH x kW`` map (a fully connected layer after ``torch.flatten``, which flattens C, H, W in
  that order, is the conv that covers the whole map; torchvision's VGG ``classifier.0`` against
  timm's ``pre_logits.fc1``), and its 1x1 case (``classifier.3`` against ``pre_logits.fc2``);
* the same in the other direction (a conv weight into a linear layer).

Any other shape mismatch is refused with both tensors named. Each mapping returns a
:class:`MapReport` that says how every tensor was placed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from headstart.errors import WeightsMismatchError

__all__ = ["MapReport", "map_strict", "map_by_order", "is_reshape_of_same_layer", "skip_key"]

_SHOW = 5


@dataclass
class MapReport:
    """How the tensors of a file were placed: counts per kind and the notable pairs."""

    counts: Counter = field(default_factory=Counter)
    """``by name`` / ``by order`` / ``by reshape`` / ``transposed`` / ``folded`` -> tensors."""
    details: list[str] = field(default_factory=list)
    """One line per tensor that was not copied as is (reshaped, transposed, folded)."""
    notes: list[str] = field(default_factory=list)
    """Facts about the conversion (epsilon differences, channel order) to show and record."""

    def add(self, kind: str, n: int = 1, detail: str | None = None) -> None:
        self.counts[kind] += n
        if detail:
            self.details.append(detail)

    def summary(self) -> str:
        """``'by order: 30, by reshape: 2'`` (kinds in a fixed order)."""
        order = ("by name", "by order", "by reshape", "transposed", "folded")
        parts = [f"{k}: {self.counts[k]}" for k in order if self.counts.get(k)]
        parts += [f"{k}: {n}" for k, n in sorted(self.counts.items()) if k not in order and n]
        return ", ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "details": list(self.details), "notes": list(self.notes)}


def skip_key(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _shape(t) -> tuple[int, ...]:
    return tuple(t.shape)


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def is_reshape_of_same_layer(src_shape: Sequence[int], tgt_shape: Sequence[int]) -> bool:
    """True when a weight of ``src_shape`` and one of ``tgt_shape`` are the same layer stored
    as a Linear ``(out, in)`` and as a Conv2d ``(out, C, kH, kW)`` with ``in == C*kH*kW``."""
    src_shape, tgt_shape = tuple(src_shape), tuple(tgt_shape)
    if {len(src_shape), len(tgt_shape)} != {2, 4}:
        return False
    linear, conv = (src_shape, tgt_shape) if len(src_shape) == 2 else (tgt_shape, src_shape)
    return linear[0] == conv[0] and linear[1] == math.prod(conv[1:])


def map_strict(src: dict, tgt: dict, file: str, model: str) -> tuple[dict, MapReport]:
    src_keys = [k for k in src if not skip_key(k)]
    tgt_keys = [k for k in tgt if not skip_key(k)]
    missing = [k for k in tgt_keys if k not in src]
    unexpected = [k for k in src_keys if k not in tgt]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of timm's keys are missing from the file ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} keys of the file are not in timm's model ({_first(unexpected)})")
        raise WeightsMismatchError(
            f"The weights file {file!r} does not match timm's {model!r} key for key: "
            + "; ".join(parts)
            + ". If it holds the same architecture under other names"
            " (torchvision, another library), import it with `--map by-order`"
            " (mapping='by-order'), which pairs tensors in order and checks every shape."
        )
    bad = [k for k in tgt_keys if _shape(src[k]) != _shape(tgt[k])]
    if bad:
        k = bad[0]
        raise WeightsMismatchError(
            f"The weights file {file!r} has the keys of timm's {model!r} but {len(bad)} shapes"
            f" differ, first {k!r}: {_shape(src[k])} in the file, {_shape(tgt[k])} in the model."
            " The file is probably for another variant (width, classes); check the model name."
        )
    report = MapReport()
    report.add("by name", len(tgt_keys))
    return {k: src[k] for k in tgt_keys}, report


def map_by_order(src: dict, tgt: dict, file: str, model: str) -> tuple[dict, MapReport]:
    src_items = [(k, v) for k, v in src.items() if not skip_key(k)]
    tgt_items = [(k, v) for k, v in tgt.items() if not skip_key(k)]
    if len(src_items) != len(tgt_items):
        raise WeightsMismatchError(
            f"The weights file {file!r} has {len(src_items)} tensors and timm's {model!r} has"
            f" {len(tgt_items)} (num_batches_tracked excluded), so they cannot be paired by order."
            " The file is for another architecture or variant; check the model name."
        )
    out, report = {}, MapReport()
    for i, ((sk, sv), (tk, tv)) in enumerate(zip(src_items, tgt_items, strict=True)):
        s_shape, t_shape = _shape(sv), _shape(tv)
        if s_shape == t_shape:
            out[tk] = sv
            report.add("by order")
        elif is_reshape_of_same_layer(s_shape, t_shape):
            out[tk] = sv.reshape(t_shape)
            report.add("by reshape", detail=f"{sk} {s_shape} -> {tk} {t_shape}")
        else:
            why = (
                " Only a Linear (out, C*kH*kW) and a Conv2d (out, C, kH, kW) weight of the same"
                " layer may differ in shape."
            )
            if sv.numel() == tv.numel():
                why = (
                    f" Both hold {sv.numel()} values, but they are not a Linear and a Conv2d of"
                    " the same layer, so reshaping one into the other would scramble it."
                )
            raise WeightsMismatchError(
                f"Pairing by order fails at tensor #{i}: the file's {sk!r} has shape {s_shape}"
                f" but timm's {tk!r} has shape {t_shape}.{why} The file {file!r} is not {model!r}"
                " with its tensors in the same order; nothing was imported."
            )
    return out, report
