"""A tiny trained run (test_resnet, 3 classes, 32 px) exported to ONNX and TorchScript once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_synthetic_folder

BLOCK_TORCH = """
import sys, importlib.abc
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'timm', 'torchvision'):
            raise ImportError(f'{name} is blocked: this process simulates an install without torch')
        return None
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="session")
def tiny_run(tiny_weights_store, tmp_path_factory) -> Path:
    import headstart

    root = tmp_path_factory.mktemp("tinyrun")
    data = write_synthetic_folder(root / "imgs", {"cat": 16, "dog": 16, "fox": 16}, size=40)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEADSTART_WEIGHTS_DIR", str(tiny_weights_store))
        headstart.fit(data, model="test_resnet", image_size=32, batch_size=8, epochs=2, probe_epochs=3,
                      device="cpu", verbose=False, out=root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def tiny_exports(tiny_run):
    """``{'onnx': ExportResult, 'torchscript': ExportResult}`` of :func:`tiny_run`."""
    from headstart.export import export_model

    return {fmt: export_model(tiny_run, fmt) for fmt in ("onnx", "torchscript")}


@pytest.fixture(scope="session")
def tiny_images(tiny_run) -> Path:
    return Path(__import__("json").loads((tiny_run / "split.json").read_text())["root"])


@pytest.fixture(scope="session")
def tiny_det_data(tmp_path_factory) -> Path:
    """24 landscape images (64x48) with one or two coloured squares of two classes, COCO layout."""
    from tests.data.detection.conftest import square_images, write_coco

    root = tmp_path_factory.mktemp("detdata")
    write_coco(root, square_images(24, 14, 5, size=(64, 48)), ["red", "blue"])
    return root


@pytest.fixture(scope="session")
def tiny_det_run(tiny_weights_store, tiny_det_data, tmp_path_factory) -> Path:
    """An FCOS detector on test_resnet (64 px), trained for a few steps: it returns boxes."""
    import headstart

    out = tmp_path_factory.mktemp("detrun") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEADSTART_WEIGHTS_DIR", str(tiny_weights_store))
        headstart.fit(tiny_det_data, out=out, task="detect", model="test_resnet", image_size=64, batch_size=4,
                      epochs=2, device="cpu", verbose=False,
                      overrides=["detect.fpn_channels=64", "detect.head_epochs=1", "detect.detector=fcos"])
    return out


@pytest.fixture(scope="session")
def tiny_det_export(tiny_det_run):
    """The ExportResult of ``headstart export tiny_det_run --format onnx``."""
    from headstart.export import export_model

    return export_model(tiny_det_run, "onnx")
