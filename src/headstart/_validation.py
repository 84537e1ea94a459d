"""Uniform, specific error messages for user input, in the style of scikit-learn's
``_param_validation``: every message names the parameter, what it must be, what it got and, for
unknown names, the closest valid ones."""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from headstart.errors import ConfigError

__all__ = ["close_matches", "did_you_mean", "check_choice", "check_number"]


def close_matches(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The ``n`` entries of ``choices`` closest to ``name`` (case-insensitive)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=cutoff)
    # Substring hits help for model names ("efficientnet_lite" -> "tf_efficientnet_lite0").
    if len(hits) < n and len(name) >= 4:
        for low in lowered:
            if name.lower() in low and low not in hits:
                hits.append(low)
            if len(hits) >= n:
                break
    return [lowered[h] for h in hits]


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """`` Did you mean 'a' or 'b'?`` or the empty string when nothing is close."""
    hits = close_matches(name, choices, n=n)
    if not hits:
        return ""
    quoted = [repr(h) for h in hits]
    if len(quoted) == 1:
        return f" Did you mean {quoted[0]}?"
    return f" Did you mean {', '.join(quoted[:-1])} or {quoted[-1]}?"


def check_choice(param: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ConfigError that lists them."""
    choices = list(choices)
    if value in choices:
        return value
    listed = "{" + ", ".join(repr(c) for c in choices) + "}"
    hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
    raise ConfigError(f"The {param!r} parameter must be one of {listed}. Got {value!r}.{hint}")


def check_number(
    param: str,
    value: Any,
    *,
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    closed: str = "neither",
) -> Any:
    """Check that ``value`` is a number of ``kind`` in the interval ``low..high``.

    ``closed`` is one of ``"neither"``, ``"left"``, ``"right"``, ``"both"`` like scikit-learn's
    ``Interval``. Returns the value converted to ``kind``.
    """
    left = "[" if closed in ("left", "both") else "("
    right = "]" if closed in ("right", "both") else ")"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    kind_name = "an int" if kind is int else "a float"
    msg = f"The {param!r} parameter must be {kind_name} in {interval}. Got {value!r}."
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(msg)
    if kind is int and not float(value).is_integer():
        raise ConfigError(msg)
    if low is not None and (value < low or (value == low and left == "(")):
        raise ConfigError(msg)
    if high is not None and (value > high or (value == high and right == ")")):
        raise ConfigError(msg)
    return kind(value)
