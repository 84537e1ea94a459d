"""The HTTP service for a detector: boxes as JSON from the ONNX export and from the PyTorch model,
conf and max_det as query or form parameters, hostile uploads answered 4xx, micro-batches of
images of different sizes over a real socket."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.export.box_helpers import assert_same_boxes, boxes_of
from tests.serve.test_serve import HOSTILE, _free_port

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def settings():
    from headstart.serve.app import ServeSettings

    return ServeSettings(max_batch=8, max_wait_ms=20, max_upload_bytes=200_000, max_pixels=4_000_000)


def _expected(run, path, **kw):
    from headstart.tasks.detection.predict import BoxPredictor

    return BoxPredictor.from_run(run).predict([path], **kw)[0]


def _assert_same(body, expected):
    """The served boxes are the run's, matched by IoU and label as the export's parity check does."""
    assert_same_boxes(body["boxes"], boxes_of(expected))
    assert (body["width"], body["height"]) == expected.size


@pytest.mark.parametrize("backend", ["onnx", "pytorch"])
def test_boxes_parameters_and_hostile_uploads(tiny_det_run, tiny_det_export, tiny_det_data, settings, backend):
    from fastapi.testclient import TestClient

    from headstart.serve.app import create_app, load_serving_backend

    path = tiny_det_data / "test" / "im20.png"
    data = path.read_bytes()
    with TestClient(create_app(load_serving_backend(tiny_det_run, backend=backend), settings)) as client:
        info = client.get("/model").json()
        assert info["task"] == "detect" and info["backend"] == backend and info["labels"] == ["red", "blue"]
        assert info["detector"]["detector"] == "fcos" and info["max_det"] == 100 and 0 <= info["conf"] <= 1
        # the run's conf by default, as a file or as base64 JSON
        for kwargs in (
            {"files": {"image": ("f.png", data, "image/png")}},
            {"json": {"image": base64.b64encode(data).decode()}},
        ):
            got = client.post("/predict", **kwargs)
            assert got.status_code == 200, got.text
            assert got.json()["conf"] == pytest.approx(info["conf"]) and got.json()["backend"] == backend
            _assert_same(got.json(), _expected(tiny_det_run, path))
        # conf and max_det as query parameters, form fields or JSON fields
        want = _expected(tiny_det_run, path, conf=0.01, max_det=3)
        assert len(want.boxes) == 3
        for kwargs in (
            {"params": {"conf": 0.01, "max_det": 3}, "files": {"image": ("f.png", data)}},
            {"data": {"conf": "0.01", "max_det": "3"}, "files": {"image": ("f.png", data)}},
            {"json": {"image": base64.b64encode(data).decode(), "conf": 0.01, "max_det": 3}},
        ):
            got = client.post("/predict", **kwargs)
            assert got.status_code == 200, got.text
            _assert_same(got.json(), want)
        assert client.post("/predict", params={"conf": 1.0}, files={"image": ("f.png", data)}).json()["boxes"] == []
        for params, message in (
            ({"conf": 2}, "conf must be a number in [0, 1] (the lowest score kept). Got '2'."),
            ({"conf": "nan"}, "conf must be a number in [0, 1]"),
            ({"max_det": 0}, "max_det must be a whole number >= 1 (the most boxes returned). Got '0'."),
            ({"max_det": "2.5"}, "max_det must be a whole number >= 1"),
        ):
            got = client.post("/predict", params=params, files={"image": ("f.png", data)})
            assert got.status_code == 422 and got.json()["detail"].startswith(message), got.text
        for name, (kwargs, status, message) in HOSTILE.items():
            got = client.post("/predict", **kwargs)
            assert got.status_code == status and message in got.json()["detail"], (name, got.status_code, got.text)
        assert client.get("/health").json()["status"] == "ok"
        assert client.post("/predict", files={"image": ("f.png", data, "image/png")}).status_code == 200


def test_serving_the_onnx_file_and_a_missing_export(tiny_det_run, tiny_det_export, tmp_path):
    import shutil

    from headstart.errors import RunFolderError
    from headstart.serve.app import load_serving_backend

    assert load_serving_backend(tiny_det_export.path).kind == "onnx"
    assert load_serving_backend(tiny_det_run).kind == "onnx"  # auto: the export when there is one
    bare = shutil.copytree(tiny_det_run, tmp_path / "run", ignore=shutil.ignore_patterns("export", "checkpoints"))
    assert load_serving_backend(bare).kind == "pytorch"
    with pytest.raises(RunFolderError, match=r"has no ONNX export .* Create it with `headstart export"):
        load_serving_backend(bare, backend="onnx")


@pytest.mark.parametrize("backend", ["onnx", "pytorch"])
def test_real_socket_micro_batches_images_of_different_sizes(
    tiny_det_run, tiny_det_export, tiny_det_data, settings, backend, tmp_path
):
    import uvicorn
    from PIL import Image

    from headstart.serve.app import create_app, load_serving_backend

    # landscape originals and portrait copies: the batch's images differ in size
    paths = sorted((tiny_det_data / "test").iterdir())
    for p in paths[:2]:
        Image.open(p).transpose(Image.Transpose.ROTATE_90).save(tmp_path / f"rot_{p.name}")
    paths += sorted(tmp_path.glob("rot_*.png"))
    expected = {p.name: _expected(tiny_det_run, p, conf=0.05) for p in paths}
    port = _free_port()
    app = create_app(load_serving_backend(tiny_det_run, backend=backend), settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)

        def client(offset):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                return [
                    (
                        p.name,
                        c.post(
                            "/predict", params={"conf": 0.05}, files={"image": (p.name, p.read_bytes(), "image/png")}
                        ).json(),
                    )
                    for p in paths[offset:] + paths[:offset]
                ]

        with ThreadPoolExecutor(6) as pool:
            results = [r for rs in pool.map(client, range(6)) for r in rs]
        for name, body in results:
            _assert_same(body, expected[name])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for name, (kwargs, status, message) in HOSTILE.items():
                got = c.post("/predict", **kwargs)
                assert got.status_code == status and message in got.json()["detail"], (name, got.text)
            health = c.get("/health").json()
        assert health["status"] == "ok" and health["images"] == 6 * len(paths)
        assert max(app.state.batcher.batch_sizes) > 1  # concurrent requests ran together
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_exif_rotated_jpeg_gets_boxes_in_its_upright_pixels(
    tiny_det_run, tiny_det_export, tiny_det_data, settings, tmp_path
):
    from fastapi.testclient import TestClient
    from PIL import Image

    from headstart.serve.app import create_app

    image = Image.open(tiny_det_data / "test" / "im21.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed rotated by 90 degrees
    path = tmp_path / "sideways.jpg"
    image.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    expected = _expected(tiny_det_run, path, conf=0.05)
    assert expected.size == (48, 64) and expected.boxes
    with TestClient(create_app(tiny_det_export.path, settings)) as client:
        got = client.post(
            "/predict", params={"conf": 0.05}, files={"image": ("s.jpg", path.read_bytes(), "image/jpeg")}
        )
    assert got.status_code == 200, got.text
    _assert_same(got.json(), expected)


def test_cli_serve_of_a_detection_run(tiny_det_run, tiny_det_export, tiny_det_data):
    import subprocess
    import sys

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "headstart", "serve", str(tiny_det_run), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, health = time.monotonic() + 120, None
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert health == {**health, "status": "ok", "backend": "onnx"}, proc.stderr.read() if proc.poll() else health
        data = (tiny_det_data / "test" / "im20.png").read_bytes()
        got = httpx.post(
            f"http://127.0.0.1:{port}/predict?conf=0.05&max_det=2",
            files={"image": ("c.png", data, "image/png")},
            timeout=60,
        )
        assert got.status_code == 200 and len(got.json()["boxes"]) == 2, got.text
        assert {b["label"] for b in got.json()["boxes"]} <= {"red", "blue"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "onnx model with 2 classes" in proc.stderr.read()
