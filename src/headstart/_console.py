"""The rich console on stderr that commands print progress to.

In a terminal, rich wraps long lines to its width. In a log (stderr not a terminal) rich would wrap
at 80 columns too, cutting a line like "model ..., input 96px, strategy lp-ft, ..." in two; there
every message stays one line (``soft_wrap``), so a log reads, and greps, one line per event."""

from __future__ import annotations

import sys

__all__ = ["make_console"]


def make_console(verbose: bool = True, **options):
    from rich.console import Console

    options.setdefault("soft_wrap", not sys.stderr.isatty())
    return Console(stderr=True, quiet=not verbose, highlight=False, **options)
