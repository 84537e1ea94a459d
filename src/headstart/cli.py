"""``headstart`` command line.

Each subcommand lives in its own module under :mod:`headstart.commands` with two functions,
``add_parser(subparsers)`` and ``run(args) -> int``, and parses into the same validated config
objects as the Python API, so the CLI and ``headstart.fit(...)`` accept the same things and fail
with the same messages. Modules are imported when the parser is built; their heavy imports (torch,
timm) happen inside ``run``. A module may declare ``REQUIRES = ("train", ...)``, the extras of
pyproject.toml it cannot run without: they are checked before ``run``, so that with the light
``headstart[predict]`` install ``headstart fit`` says which extra to install instead of failing
with a traceback (``headstart --help`` and ``headstart predict model.onnx`` need no torch).
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
    from headstart._version import __version__

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
    from headstart._imports import check_extras, extra_of_module
    from headstart.errors import ConfigError, HeadstartError

    parser = build_parser()
    # Overrides (section.key=value) may follow options: argparse leaves those for us.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "inputs") and not any(e.startswith("-") for e in extra):
            args.inputs = [*args.inputs, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    module = importlib.import_module(COMMANDS[args.command])
    try:
        check_extras(getattr(module, "REQUIRES", ()), f"`headstart {args.command}`")
        return module.run(args)
    except ConfigError as exc:
        print(f"headstart {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except HeadstartError as exc:
        print(f"headstart {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        # A path the command's REQUIRES does not cover (e.g. `predict RUN_FOLDER` without torch):
        # name the extra when the module belongs to one, else it is a bug and the traceback stays.
        needed = extra_of_module(exc.name)
        if needed is None:
            raise
        print(f"headstart {args.command}: error: `headstart {args.command}` needs {exc.name.split('.')[0]!r} (the"
              f" {needed!r} extra), which is not installed. Install it with: pip install 'headstart[{needed}]'.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"headstart {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
