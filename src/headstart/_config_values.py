"""Values as the command line and ``section.key=value`` overrides give them, read as YAML scalars
(kept apart from :mod:`headstart.config`, which re-exports them)."""

from __future__ import annotations

from typing import Any

import yaml

from headstart.errors import ConfigError

__all__ = ["parse_override", "parse_scalar"]


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.lr=3e-4'`` -> ``('train.lr', 0.0003)``; values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(
            f"An override must look like 'section.key=value' (for example 'train.lr=3e-4'). Got {text!r}."
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"An override needs a key before '='. Got {text!r}.")
    return key, parse_scalar(raw)


def parse_scalar(raw: str) -> Any:
    """A command-line or override value as YAML reads it: '3e-4' -> 0.0003, 'true' -> True,
    'null' -> None, anything else stays text."""
    if not raw.strip():
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # PyYAML reads '3e-4' (no dot) as a string; numbers are what users mean.
    if isinstance(value, str) and _looks_numeric(value):
        value = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
    return value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
