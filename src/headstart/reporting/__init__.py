"""``headstart report``: one self-contained HTML page for a run (inline CSS and PNGs, no network)."""

from headstart.reporting.build import build_report, write_report

__all__ = ["build_report", "report", "write_report"]

report = write_report
"""``headstart.report(run_dir, out=None)``: write the run's report.html (see :func:`write_report`)."""
