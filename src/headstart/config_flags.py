"""The arguments of `headstart fit` and ``headstart.fit(**kwargs)`` around the config models.

The CLI flags are derived from the fields of :mod:`headstart.config` that declare one (``_cli``), so
the flag list, the help text (the field's docstring and default), ``FLAT_KEYS`` and the models
cannot drift apart. :func:`check_resume_arguments` names the arguments that resume would ignore.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel

from headstart.config import FLAT_KEYS, FLAT_PARAMS, FitConfig, FlatParam, build_config, parse_scalar
from headstart.errors import ConfigError

__all__ = ["ConfigFlag", "CONFIG_FLAGS", "add_config_flags", "flat_from_args", "RESUME_KEEPS",
           "check_resume_arguments"]


@dataclass(frozen=True)
class ConfigFlag:
    """A `headstart fit` flag that sets one config field."""

    flag: str  # '--lr'
    flat: str  # 'lr': its key in headstart.fit(**kwargs) and FLAT_KEYS, and its argparse dest
    dotted: str  # 'train.lr'
    action: str  # 'store' (takes a value), 'store_true' or 'store_false' (a bool field)
    metavar: str | None
    help: str  # the field's docstring, with its default
    text: bool  # the value stays text (a name, a path) instead of being read as YAML


def _plain(annotation: Any) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _sentence(text: str | None) -> str:
    return re.sub(r"\s+", " ", re.sub(r"``([^`]*)``", r"\1", text or "")).strip()


def _config_flag(param: FlatParam) -> ConfigFlag:
    field, kind = param.field, _plain(param.field.annotation)
    text = _sentence(param.help or field.description)
    if not text:
        raise TypeError(f"The config field {param.dotted!r} has a CLI flag but no docstring to use as its help.")
    if kind is bool:
        action = "store_true" if field.default is False else "store_false"
        if action == "store_false" and not param.flag.startswith("--no-"):
            raise TypeError(f"The flag of {param.dotted!r} (default true) must be '--no-...'. Got {param.flag!r}.")
        return ConfigFlag(param.flag, param.name, param.dotted, action, None, text, False)
    if typing.get_origin(kind) is Literal:
        metavar = "{" + ",".join(map(str, typing.get_args(kind))) + "}"
    else:
        metavar = param.metavar or {int: "N", float: "F"}.get(kind, param.name.upper())
    if field.default is not None:
        text = f"{text.rstrip('.')} (default: {field.default})."
    return ConfigFlag(param.flag, param.name, param.dotted, "store", metavar, text, param.text)


# flag -> its ConfigFlag, in the order of the config fields
CONFIG_FLAGS: dict[str, ConfigFlag] = {p.flag: _config_flag(p) for p in FLAT_PARAMS.values() if p.flag}

# section name -> its model ('data' -> DataConfig)
_SECTIONS = {name: info.annotation for name, info in FitConfig.model_fields.items()
             if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)}


def add_config_flags(parser: argparse.ArgumentParser, flags: Mapping[str, ConfigFlag], *, title: str | None = None,
                     description: str | None = None) -> None:
    """Add ``flags`` to ``parser``: in one argument group with ``title``, or else one group per config
    section (described by the section's docstring) and the run-level ones in a 'run options' group."""
    groups: dict[str, Any] = {}
    for spec in flags.values():
        section = spec.dotted.split(".")[0] if "." in spec.dotted else "run"
        key = title or section
        if key not in groups:
            doc = description if title else _sentence(getattr(_SECTIONS.get(section), "__doc__", None)) or None
            groups[key] = parser.add_argument_group(title or f"{section} options", doc)
        kwargs: dict[str, Any] = {"dest": spec.flat, "default": None, "help": spec.help.replace("%", "%%")}
        if spec.action == "store":
            kwargs["metavar"] = spec.metavar
        else:
            kwargs["action"] = spec.action
        groups[key].add_argument(spec.flag, **kwargs)


def flat_from_args(args: argparse.Namespace, flags: Mapping[str, ConfigFlag]) -> dict[str, Any]:
    """The flat parameters (see headstart.config.FLAT_KEYS) of the ``flags`` given on the command line;
    values are read as YAML scalars ('3e-4' -> 0.0003), except names and paths."""
    flat: dict[str, Any] = {}
    for spec in flags.values():
        value = getattr(args, spec.flat, None)
        if value is not None:
            flat[spec.flat] = parse_scalar(value) if spec.action == "store" and not spec.text else value
    return flat


# Flat parameters that resume uses itself; with resume every other config argument would be ignored.
RESUME_KEEPS = ("out", "resume", "devices")  # devices: a run resumes on any number


def check_resume_arguments(
    flat: Mapping[str, Any],
    overrides: Sequence[str] = (),
    config: str | Path | Mapping[str, Any] | FitConfig | None = None,
    *,
    data: str | Path | None = None,
    saved: str | Path | Mapping[str, Any] | FitConfig | None = None,
    cli: bool = False,
) -> None:
    """With ``flat['resume']``, raise a ConfigError naming the arguments that resume would ignore.

    Resume continues a run with the config.yaml saved in its folder (``saved``: that file, or its
    config), so ``data``, ``config``, ``overrides`` and every flat parameter but ``out`` are ignored.
    One that leaves the saved config as it is (the run's own dataset, a flag repeating the saved
    value) passes; without ``saved`` every one given counts. ``cli`` names them as `headstart fit`
    arguments (``--lr 0.1``) instead of Python ones (``lr=0.1``).
    """
    if not flat.get("resume"):
        return
    base = None if saved is None else build_config(config=saved)
    ignored = []
    if data is not None and (base is None or not _same_path(data, base.data.path)):
        ignored.append(f"the dataset {str(data)!r}" if cli else f"data={str(data)!r}")
    if config is not None and not _keeps(base, replace=config):
        shown = str(config) if isinstance(config, (str, Path)) else f"<{type(config).__name__}>"
        ignored.append(f"--config {shown}" if cli else f"config={shown!r}")
    for key, value in flat.items():
        if key in RESUME_KEEPS or value is None or (key in FLAT_KEYS and _keeps(base, **{key: value})):
            continue
        param = FLAT_PARAMS.get(key)
        flag = param.flag if param is not None and param.flag else "--" + key.replace("_", "-")
        shown = str(value) if isinstance(value, Path) else value
        ignored.append((flag if isinstance(value, bool) else f"{flag} {value}") if cli else f"{key}={shown!r}")
    ignored += [text if cli else repr(text) for text in overrides if not _keeps(base, overrides=[text])]
    if not ignored:
        return
    out = flat.get("out") or (config.out if isinstance(config, FitConfig) else None) or (base and base.out)
    where = f"the run in {str(out)!r}" if out else "the run in --out" if cli else "the run in 'out'"
    what, fix = ("--resume", "--out") if cli else ("The 'resume' parameter", "'out'")
    raise ConfigError(
        f"{what} continues {where} with its saved config.yaml, so these arguments would be ignored:"
        f" {', '.join(ignored)}. Drop them, or start a new run with a different {fix}."
    )


def _keeps(base: FitConfig | None, replace: Any = None, **arguments: Any) -> bool:
    """Whether ``build_config(config=base, **arguments)``, or the config ``replace``, is ``base`` again (out
    and resume aside). An argument that does not validate changes it."""
    if base is None:
        return False
    try:
        new = build_config(config=base if replace is None else replace, **arguments)
    except ConfigError:
        return False
    return _results(new) == _results(base)


def _results(cfg: FitConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.to_dict().items() if k not in RESUME_KEEPS}


def _same_path(a: str | Path, b: str | Path | None) -> bool:
    return b is not None and (Path(a) == Path(b) or Path(a).expanduser().resolve() == Path(b).expanduser().resolve())
