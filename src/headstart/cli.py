"""``headstart`` command line.

Each subcommand lives in its own module under :mod:`headstart.commands` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``, and parses into the same validated config
objects as the Python API, so the CLI and ``headstart.fit(...)`` accept the same things and fail
with the same messages. Modules are imported when the parser is built; their heavy imports (torch,
timm) happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

__all__ = ["main", "build_parser", "COMMANDS"]

# subcommand -> module in headstart.commands
COMMANDS: dict[str, str] = {
    "fit": "headstart.commands.fit",
    "predict": "headstart.commands.predict",
    "weights": "headstart.commands.weights",
    "rank": "headstart.commands.rank",
    "tune": "headstart.commands.tune",
    "doctor": "headstart.commands.doctor",
    "report": "headstart.commands.report",
    "export": "headstart.commands.export",
    "serve": "headstart.commands.serve",
}


def build_parser() -> argparse.ArgumentParser:
    from headstart import __version__

    parser = argparse.ArgumentParser(
        prog="headstart", description="Transfer learning on images that works the first time."
    )
    parser.add_argument("--version", action="version", version=f"headstart {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sub.required = True
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from headstart.errors import ConfigError, HeadstartError

    parser = build_parser()
    # Overrides (section.key=value) may follow options: argparse leaves those for us.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "inputs") and not any(e.startswith("-") for e in extra):
            args.inputs = [*args.inputs, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return importlib.import_module(COMMANDS[args.command]).run(args)
    except ConfigError as exc:
        print(f"headstart {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except HeadstartError as exc:
        print(f"headstart {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"headstart {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
