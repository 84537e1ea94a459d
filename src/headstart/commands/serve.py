"""`headstart serve`: HTTP inference for a run folder or an exported model (127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import sys

from headstart.config import parse_scalar

# extras of pyproject.toml this command cannot run without (checked by headstart.cli before run)
REQUIRES = ("serve",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve a model over HTTP (POST /predict, GET /health, GET /model)",
        description="Serve a run folder (its ONNX export when there is one, else the PyTorch model) or an .onnx /"
        " .ts file over HTTP with FastAPI + uvicorn. Concurrent requests are batched.")
    p.add_argument("run", help="a run folder, or an .onnx / .ts file written by headstart export")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", default="8000", help="port (default 8000)")
    p.add_argument("--backend", default="auto", help="auto (default: ONNX export if present), onnx or pytorch")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda, for the pytorch backend")
    p.add_argument("--threads", default="0", help="onnxruntime threads (default 0: onnxruntime decides)")
    p.add_argument("--max-batch", default="16", help="largest batch of concurrent requests (default 16)")
    p.add_argument("--max-wait-ms", default="5", help="how long a request waits for others to batch with (default 5)")
    p.add_argument("--max-upload-mb", default="10", help="largest request body in MB (default 10)")
    p.add_argument("--max-pixels", default="40000000", help="largest image in pixels (default 40000000)")
    p.add_argument("--log-level", default="info", help="uvicorn log level (default info)")


def run(args: argparse.Namespace) -> int:
    from headstart._imports import optional_import
    from headstart._validation import check_choice, check_number
    from headstart.serve.app import ServeSettings, create_app, load_serving_backend

    port = check_number("port", parse_scalar(args.port), kind=int, low=0, high=65535, closed="both")
    threads = check_number("threads", parse_scalar(args.threads), kind=int, low=0, closed="left")
    settings = ServeSettings(
        max_batch=check_number("max_batch", parse_scalar(args.max_batch), kind=int, low=1, high=1024, closed="both"),
        max_wait_ms=check_number("max_wait_ms", parse_scalar(args.max_wait_ms), kind=float, low=0, high=1000,
                                 closed="both"),
        max_upload_bytes=int(check_number("max_upload_mb", parse_scalar(args.max_upload_mb), kind=float, low=0,
                                          closed="neither") * 1024 * 1024),
        max_pixels=check_number("max_pixels", parse_scalar(args.max_pixels), kind=int, low=1, closed="left"),
    )
    log_level = check_choice("log_level", args.log_level, ["critical", "error", "warning", "info", "debug"])
    uvicorn = optional_import("uvicorn", extra="serve")
    backend = load_serving_backend(args.run, backend=args.backend, device=args.device, threads=threads or None)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"headstart serve: listening on {args.host}: other machines can reach this server; it has no"
              " authentication.", file=sys.stderr)
    print(f"headstart serve: {backend.kind} model with {len(backend.classes)} classes on http://{args.host}:{port}",
          file=sys.stderr, flush=True)
    uvicorn.run(create_app(backend, settings), host=args.host, port=port, log_level=log_level)
    return 0
