"""Durations on the command line and in messages: ``90s``, ``20m``, ``1h30m`` or a number of seconds.

The one parser of ``headstart tune --timeout`` and ``headstart rank --budget`` (a core module: no
heavy imports, so every layer can use it).
"""

from __future__ import annotations

import math
import re
from typing import Any

from headstart.errors import ConfigError

__all__ = ["parse_duration", "format_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)


def parse_duration(value: Any, param: str = "timeout") -> float | None:
    """Seconds in ``value``: a number (seconds) or text like ``90s``, ``20m``, ``1h``, ``1h30m``.

    ``None`` gives ``None`` (no limit); anything else that is not a positive duration raises a
    :class:`~headstart.errors.ConfigError` naming ``param``.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts).lower() != text.lower():
                raise ConfigError(
                    f"The {param!r} parameter must be a duration like '90s', '20m', '1h' or '1h30m' "
                    f"(or a number of seconds). Got {value!r}."
                ) from None
            seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    if not seconds > 0 or not math.isfinite(seconds):
        raise ConfigError(f"The {param!r} parameter must be a positive duration. Got {value!r}.")
    return seconds


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s`` or ``1h30m``; ``?`` for an unknown (None or not finite) duration."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
