"""Fixtures of the tune tests: the fast fit settings, and a throwaway PostgreSQL server."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

# every trial: tiny random-init model, 32 px, 1 epoch (about a second on 2 CPU cores)
FAST = dict(model="test_resnet", image_size=32, batch_size=16, epochs=1, probe_epochs=2, device="cpu", strategy="full")
FAST_FLAGS = ["--model", "test_resnet", "--image-size", "32", "--batch-size", "16", "--epochs", "1",
              "--probe-epochs", "2", "--device", "cpu", "--strategy", "full"]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL cluster in a temp dir on a free port of 127.0.0.1 (run as the postgres user
    when the tests run as root, since the server refuses to run as root)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl): apt-get install -y postgresql")
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for a PostgreSQL storage: pip install psycopg2-binary")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="hs-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if prefix is None:
            pytest.skip("running as root without runuser to start the server as 'postgres'")
    port = _free_port()
    data, log = root / "data", root / "log.txt"
    run = lambda cmd: subprocess.run(prefix + cmd, capture_output=True, text=True, timeout=120)  # noqa: E731
    res = run([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed, no PostgreSQL server can be started here: {res.stderr[-500:]}")
    res = run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
               f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"pg_ctl start failed, no PostgreSQL server can be started here: {res.stderr[-500:]}")
    try:
        import psycopg2

        for _ in range(50):
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
                break
            except psycopg2.OperationalError:
                time.sleep(0.2)
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE hs")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/hs"
    finally:
        run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
