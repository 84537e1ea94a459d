"""The HTTP service: endpoints, hostile uploads, micro-batching, and a short real-socket load."""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` pixels: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg(seed: int = 0, size=(48, 36)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


HOSTILE = {
    "empty": ({"files": {"image": ("e.png", b"", "image/png")}}, 422, "empty"),
    "non-image": ({"files": {"image": ("x.png", b"just some text, not pixels", "image/png")}}, 422, "not an image"),
    "corrupt": ({"files": {"image": ("c.jpg", _jpeg()[: len(_jpeg()) * 2 // 3], "image/jpeg")}}, 422, "corrupt or truncated"),
    "bomb": ({"files": {"image": ("b.png", _png_header_only(5_000, 5_000), "image/png")}}, 413,
             "5000x5000 = 25000000 pixels, more than the server's limit of 4000000"),
    "giant bomb": ({"files": {"image": ("g.png", _png_header_only(50_000, 50_000), "image/png")}}, 413,
                   "the server's limit is 4000000 pixels (a guard against decompression bombs)"),
    "huge body": ({"content": b"\0" * 300_000, "headers": {"content-type": "application/json"}}, 413,
                  "larger than the server's limit of 200000 bytes"),
    "bad base64": ({"json": {"image": "not base64 at all!"}}, 422, "not valid base64"),
    "no image field": ({"json": {"picture": "abc"}}, 422, "needs an 'image' field"),
    "wrong type": ({"content": b"abc", "headers": {"content-type": "text/plain"}}, 415, "Unsupported Content-Type"),
}


@pytest.fixture(scope="module")
def settings():
    from headstart.serve.app import ServeSettings

    return ServeSettings(max_batch=8, max_wait_ms=10, max_upload_bytes=200_000, max_pixels=4_000_000)


def test_endpoints_and_hostile_uploads(tiny_run, tiny_exports, tiny_images, settings):
    from fastapi.testclient import TestClient

    from headstart.predict import Predictor
    from headstart.serve.app import create_app

    path = tiny_images / "fox" / "fox_003.png"
    expected = Predictor.from_run(tiny_run).predict([path], top_k=3)[0]
    with TestClient(create_app(tiny_run, settings)) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/model").json()
        assert info["labels"] == ["cat", "dog", "fox"] and info["input_size"] == 32 and info["backend"] == "onnx"
        assert info["provenance"]["weights"]["sha256"] and info["limits"]["max_pixels"] == 4_000_000
        data = path.read_bytes()
        for kwargs in ({"files": {"image": ("f.png", data, "image/png")}}, {"json": {"image": base64.b64encode(data).decode()}}):
            got = client.post("/predict", params={"top_k": 3}, **kwargs)
            assert got.status_code == 200, got.text
            body = got.json()
            assert [t["label"] for t in body["top_k"]] == list(expected.labels)
            np.testing.assert_allclose([t["prob"] for t in body["top_k"]], expected.probs, atol=1e-5)
        for name, (kwargs, status, message) in HOSTILE.items():
            got = client.post("/predict", **kwargs)
            assert got.status_code == status and message in got.json()["detail"], (name, got.status_code, got.text)
        assert client.post("/predict", params={"top_k": 0}, files={"image": ("f.png", data)}).status_code == 422
        assert client.get("/health").json()["status"] == "ok"
        assert client.post("/predict", files={"image": ("f.png", data, "image/png")}).status_code == 200


def test_pytorch_backend_when_asked(tiny_run, tiny_exports):
    from headstart.errors import ConfigError
    from headstart.serve.app import load_serving_backend

    assert load_serving_backend(tiny_run, backend="pytorch").kind == "pytorch"
    assert load_serving_backend(tiny_run).kind == "onnx"
    assert load_serving_backend(tiny_run / "export" / "model.ts").kind == "torchscript"
    with pytest.raises(ConfigError, match=r"The 'backend' parameter must be one of \{'auto', 'onnx', 'pytorch'\}. Got 'onx'"):
        load_serving_backend(tiny_run, backend="onx")


def test_micro_batcher_groups_concurrent_requests():
    from headstart.serve.batching import MicroBatcher

    seen = []

    def run(batch):
        seen.append(len(batch))
        return batch.reshape(len(batch), -1).sum(1, keepdims=True)

    async def main(max_batch):
        batcher = MicroBatcher(run, max_batch=max_batch, max_wait_s=0.05)
        await batcher.start()
        try:
            out = await asyncio.gather(*(batcher.submit(np.full((2,), i)) for i in range(8)))
        finally:
            await batcher.stop()
        return [int(o[0]) for o in out]

    assert asyncio.run(main(16)) == [2 * i for i in range(8)] and seen == [8]
    seen.clear()
    assert asyncio.run(main(3)) == [2 * i for i in range(8)] and seen == [3, 3, 2]


def test_micro_batcher_failure_fails_only_that_batch():
    from headstart.serve.batching import MicroBatcher

    def run(batch):
        if (batch < 0).any():
            raise ValueError("bad batch")
        return batch

    async def main():
        batcher = MicroBatcher(run, max_batch=4, max_wait_s=0)
        await batcher.start()
        try:
            with pytest.raises(ValueError, match="bad batch"):
                await batcher.submit(np.array([-1]))
            return await batcher.submit(np.array([5]))
        finally:
            await batcher.stop()

    assert asyncio.run(main()).tolist() == [5]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_socket_concurrent_load_then_hostile_uploads(tiny_run, tiny_exports, tiny_images, settings):
    import uvicorn

    from headstart.serve.app import create_app

    port = _free_port()
    app = create_app(tiny_run, settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        images = sorted((tiny_images / "cat").iterdir())[:5] + sorted((tiny_images / "dog").iterdir())[:5]

        def client(i):
            with httpx.Client(base_url=base, timeout=30) as c:
                return [c.post("/predict", files={"image": (p.name, p.read_bytes(), "image/png")}).json()["label"]
                        for p in images[i::2]]

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(client, [0, 1] * 3))  # 6 clients x 5 requests
        assert results[0] == results[2] == results[4] and results[1] == results[3] == results[5]
        with httpx.Client(base_url=base, timeout=30) as c:
            for name, (kwargs, status, message) in HOSTILE.items():
                got = c.post("/predict", **kwargs)
                assert got.status_code == status and message in got.json()["detail"], (name, got.text)
            health = c.get("/health").json()
        assert health["status"] == "ok" and health["images"] == 30
        assert c is not None and app.state.batcher.batch_sizes  # batches ran
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_cli_serve_subprocess(tiny_run, tiny_exports, tiny_images):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "headstart", "serve", str(tiny_run), "--port", str(port),
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.monotonic() + 60, None
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert health == {**health, "status": "ok", "backend": "onnx"}, proc.stderr.read() if proc.poll() else health
        data = (tiny_images / "cat" / "cat_000.png").read_bytes()
        got = httpx.post(f"http://127.0.0.1:{port}/predict", files={"image": ("c.png", data, "image/png")}, timeout=30)
        assert got.status_code == 200 and got.json()["label"] in ("cat", "dog", "fox")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "127.0.0.1" in proc.stderr.read()


def test_cli_serve_errors(tiny_run):
    proc = subprocess.run([sys.executable, "-m", "headstart", "serve", str(tiny_run), "--port", "99999"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "The 'port' parameter must be an int in [0, 65535]. Got 99999." in proc.stderr
