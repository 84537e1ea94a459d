"""Serving throughput and latency: exported models with onnxruntime versus eager PyTorch.

    python benchmarks/serve.py [--task classify|detect|both] [--clients 8] [--requests 400] [--threads 2]
                               [--image-size 224] [--results benchmarks/results/serve.json]

classify: makes (once) a linear-probe run of ``mobilenetv2_100`` on examples/faces (640x640 JPEG
uploads). detect: makes (once) an FCOS detector on ``mobilenetv2_100`` trained on examples/glyphs
(``--det-epochs``; its 256x256 test JPEGs are the uploads). Each run is exported to ONNX, then for
each backend ``headstart serve RUN --backend {onnx,pytorch}`` starts on 127.0.0.1 (a separate process
limited to ``--threads`` CPU threads), ``--requests`` uploads are sent from ``--clients`` concurrent
clients after a warm-up, and requests/s, p50/p99 latency and the server process's CPU seconds
(wall time is inflated on a shared machine; CPU time is not) are printed as a Markdown table.
Needs the real weights (``headstart weights fetch mobilenetv2_100``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "examples" / "faces"
GLYPHS = REPO / "examples" / "glyphs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_run(run: Path, image_size: int) -> None:
    import headstart
    from headstart.export import export_model

    if not (run / "model" / "model.safetensors").is_file():
        headstart.fit(FACES, model="mobilenetv2_100", strategy="linear-probe", image_size=image_size, device="cpu",
                      verbose=False, seed=0, out=run)
    if not (run / "export" / "model.onnx").is_file():
        print(export_model(run, "onnx").summary(), file=sys.stderr)


def _make_detection_run(run: Path, epochs: int) -> None:
    import headstart
    from headstart.export import export_model

    if not (run / "model" / "model.safetensors").is_file():
        headstart.fit(GLYPHS, model="mobilenetv2_100", epochs=epochs, device="cpu", verbose=False, seed=0, out=run)
    if not (run / "export" / "model.onnx").is_file():
        print(export_model(run, "onnx").summary(), file=sys.stderr)


def _detection_payloads() -> list[bytes]:
    return [p.read_bytes() for p in sorted((GLYPHS / "test").glob("*.jpg"))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _payloads(n: int = 16) -> list[bytes]:
    from PIL import Image

    out = []
    for path in sorted(FACES.rglob("*.png"))[:n]:
        buf = io.BytesIO()
        # a phone-like upload: a 640x640 JPEG, so decoding and resizing are part of the cost
        Image.open(path).convert("RGB").resize((640, 640)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _measure(run: Path, backend: str, clients: int, requests: int, threads: int, payloads: list[bytes]) -> dict:
    import httpx

    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "headstart", "serve", str(run), "--backend", backend, "--port", str(port),
           "--threads", str(threads), "--log-level", "warning"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {server.stderr.read() if server.poll() is not None else ''}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)

        def client(i: int, count: int) -> list[float]:
            latencies = []
            with httpx.Client(base_url=base, timeout=60) as c:
                for j in range(count):
                    t0 = time.perf_counter()
                    r = c.post("/predict", files={"image": ("x.jpg", payloads[(i + j) % len(payloads)], "image/jpeg")})
                    r.raise_for_status()
                    latencies.append(time.perf_counter() - t0)
            return latencies

        with ThreadPoolExecutor(clients) as pool:  # warm-up
            list(pool.map(lambda i: client(i, 3), range(clients)))
        per_client = max(1, requests // clients)
        cpu0 = _cpu_seconds(server.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            lat = np.concatenate([np.array(x) for x in pool.map(lambda i: client(i, per_client), range(clients))])
        elapsed = time.perf_counter() - t0
        cpu = _cpu_seconds(server.pid) - cpu0
        health = httpx.get(base + "/health").json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"backend": backend, "requests": len(lat), "rps": len(lat) / elapsed, "p50_ms": 1000 * np.percentile(lat, 50),
            "p99_ms": 1000 * np.percentile(lat, 99), "mean_batch": health.get("mean_batch"), "wall_s": elapsed,
            "server_cpu_s": cpu, "server_cpu_ms_per_request": 1000 * cpu / len(lat)}


def _table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n")
    print("| backend | requests/s | p50 latency (ms) | p99 latency (ms) | mean batch | server CPU ms / request |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['mean_batch']} |"
              f" {r['server_cpu_ms_per_request']:.0f} |")
    print(f"\nONNX / eager PyTorch throughput: {rows[0]['rps'] / rows[1]['rps']:.2f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="both", choices=("classify", "detect", "both"))
    p.add_argument("--run", type=Path, default=REPO / "runs" / "bench-serve-mobilenetv2")
    p.add_argument("--det-run", type=Path, default=REPO / "runs" / "bench-serve-fcos-mobilenetv2")
    p.add_argument("--det-epochs", type=int, default=6)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--results", type=Path, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: say how busy it was
    record = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
              "cpus_visible": os.cpu_count(), "load_average_at_start": load, "clients": args.clients,
              "threads": args.threads, "results": {}}
    if args.task in ("classify", "both"):
        _make_run(args.run, args.image_size)
        rows = [_measure(args.run, b, args.clients, args.requests, args.threads, _payloads()) for b in ("onnx", "pytorch")]
        record["results"]["classify"] = rows
        _table(f"MobileNetV2 classifier ({args.image_size} px), {args.clients} concurrent clients, {rows[0]['requests']}"
               f" requests, {args.threads} threads, 127.0.0.1, {os.cpu_count()} CPUs visible", rows)
    if args.task in ("detect", "both"):
        _make_detection_run(args.det_run, args.det_epochs)
        rows = [_measure(args.det_run, b, args.clients, args.requests, args.threads, _detection_payloads())
                for b in ("onnx", "pytorch")]
        model = json.loads((args.det_run / "model" / "model.json").read_text())
        record["results"]["detect"] = rows
        record["detector"] = {k: model["detector"][k] for k in ("detector", "backbone", "image_size")}
        _table(f"{model['detector']['detector']} detector on MobileNetV2 ({model['detector']['image_size']} px, 256x256"
               f" JPEG uploads), {args.clients} concurrent clients, {rows[0]['requests']} requests, {args.threads}"
               f" threads, 127.0.0.1, {os.cpu_count()} CPUs visible", rows)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
