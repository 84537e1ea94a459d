"""Read the annotation files of a detection dataset (JSON, YAML, XML, text) -- only ever read.

A file that cannot be parsed stops the load at once with a :class:`~headstart.errors.DataError`
that names the file and repeats the parser's message with its line and column: one broken file
usually means a broken export, and guessing around it would hide that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from headstart.errors import DataError

__all__ = ["load_json", "load_yaml", "load_xml", "read_lines"]

_REEXPORT = "Fix the file or export it again from the annotation tool."


def _read_text(path: Path, kind: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"Cannot read the {kind} file {str(path)!r}: it is not UTF-8 text (byte {exc.start}:"
            f" {exc.reason}). Save it as UTF-8."
        ) from None
    except OSError as exc:
        raise DataError(f"Cannot read the {kind} file {str(path)!r}: {exc.strerror or exc}.") from None


def load_json(path: Path) -> Any:
    """The parsed JSON file; a syntax error names the line and column."""
    text = _read_text(path, "JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"Cannot read the JSON file {str(path)!r}: {exc.msg} at line {exc.lineno}, column"
            f" {exc.colno}. {_REEXPORT}"
        ) from None


def load_yaml(path: Path) -> Any:
    """The parsed YAML file (``yaml.safe_load``: plain data only); an error names the line."""
    import yaml

    text = _read_text(path, "YAML")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DataError(f"Cannot read the YAML file {str(path)!r}: {problem}{at}. Fix the file.") from None


def load_xml(path: Path):
    """The root element of the XML file; a syntax error names the line and column.

    Only files the user gave are parsed. ElementTree's default parser (expat) never fetches
    external entities or DTDs (no file or network access), and expat 2.4.1 and newer caps the
    expansion of internal entities (the "billion laughs" attack); nothing beyond the standard XML
    entities appears in VOC annotations anyway. (defusedxml would add nothing we need here and is
    not a dependency.)
    """
    import xml.etree.ElementTree as ET

    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (None, None))
        reason = str(exc).split(":")[0]
        at = f" at line {line}, column {column + 1}" if line is not None else ""
        raise DataError(f"Cannot read the XML file {str(path)!r}: {reason}{at}. {_REEXPORT}") from None
    except OSError as exc:
        raise DataError(f"Cannot read the XML file {str(path)!r}: {exc.strerror or exc}.") from None


def read_lines(path: Path) -> list[str]:
    """The lines of a text file (label file, image list), without line ends; line ``i`` of the
    file is ``lines[i - 1]``."""
    return _read_text(path, "text").splitlines()
