"""`headstart report`: one self-contained HTML page for a run folder."""

from __future__ import annotations

import argparse

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("train",)


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write RUN/report.html: metrics, curves, worst images, findings, config",
                       description="Write a self-contained HTML report (inline images and CSS, no network) for a run.")
    p.add_argument("run_dir", help="a run folder written by `headstart fit`")
    p.add_argument("--out", default=None, help="where to write the page (default: RUN/report.html)")
    p.add_argument("--doctor", default="quick", help="doctor level for the findings: quick (default), images, full, none")


def run(args: argparse.Namespace) -> int:
    from headstart._validation import check_choice
    from headstart.reporting import write_report

    level = check_choice("doctor", args.doctor, ["quick", "images", "full", "none"])
    path = write_report(args.run_dir, args.out, doctor_level=None if level == "none" else level)
    print(path)
    return 0
