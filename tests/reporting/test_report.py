"""The run report: sections, self-containment, escaping, and a real headless browser."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from headstart.reporting import build_report, write_report
from tests.diagnose.conftest import XSS_CLASSES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_path(run_dir) -> Path:
    path = run_dir / "report.html"
    assert path.is_file()  # fit wrote it
    return write_report(run_dir)


def test_report_has_every_section_and_no_external_resource(report_path):
    text = report_path.read_text(encoding="utf-8")
    for anchor in ("doctor", "dataset", "curves", "metrics", "worst", "config"):
        assert f'id="{anchor}"' in text
    assert text.count("data:image/png;base64,") >= 3  # curves, confusion matrix, thumbnails
    assert "http://" not in text and "https://" not in text and "<link" not in text


def test_class_names_are_escaped(report_path):
    text = report_path.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<img src=x" not in text
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_ranking_and_tuning_tables_when_present(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "rank.json").write_text(json.dumps([{"model": "<b>m1</b>", "probe_accuracy": 0.91}]))
    (run / "trials.csv").write_text("number,value,lr\n0,0.8,0.001\n1,0.85,0.0003\n")
    text = build_report(run, doctor_level=None)
    assert 'id="ranking"' in text and "&lt;b&gt;m1&lt;/b&gt;" in text
    assert 'id="tuning"' in text and "0.0003" in text


def test_fit_still_succeeds_when_the_report_fails(tmp_path, monkeypatch):
    from headstart.reporting import fit_hooks

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr("headstart.reporting.build.write_report", broken)
    with pytest.warns(RuntimeWarning, match="Could not write the run report.*boom.*headstart report"):
        assert fit_hooks.report_after_fit(tmp_path) is None


def test_cli_report_and_missing_run(run_dir, tmp_path):
    out = tmp_path / "r.html"
    ok = subprocess.run([sys.executable, "-m", "headstart", "report", str(run_dir), "--out", str(out), "--doctor", "none"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and 'id="doctor"' not in out.read_text()
    bad = subprocess.run([sys.executable, "-m", "headstart", "report", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "does not exist" in bad.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); the headless"
                    " browser test of the report needs it")
def test_report_renders_in_headless_chromium(report_path, tmp_path):
    import numpy as np
    from PIL import Image

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = report_path.resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "headstart report" in dom.stdout and "<script" not in dom.stdout.lower()
    assert XSS_CLASSES[0].replace("<", "&lt;").replace(">", "&gt;") in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2400", url],
                   capture_output=True, text=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01  # text, tables and plots drawn, not a blank page
