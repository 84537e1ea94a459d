"""Export round trips: the files, their metadata, parity with PyTorch, and the failure path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from headstart.errors import ConfigError


def test_onnx_file_is_valid_with_metadata_and_dynamic_batch(tiny_run, tiny_exports):
    import onnx
    import onnxruntime as ort

    result = tiny_exports["onnx"]
    assert result.path == tiny_run / "export" / "model.onnx"
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["labels"]) == ["cat", "dog", "fox"]
    assert props["input_size"] == "32" and props["interpolation"] in ("bicubic", "bilinear")
    pre = json.loads((tiny_run / "model" / "preprocessing.json").read_text())
    assert json.loads(props["mean"]) == pre["mean"] and json.loads(props["std"]) == pre["std"]
    meta = json.loads(props["headstart"])
    assert meta["provenance"]["weights"]["sha256"] and meta["headstart_version"]
    assert meta["preprocessing"]["resize_size"] == int(props["resize_size"])
    # uint8 input with a symbolic batch dimension; normalisation happens inside
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(uint8)" and isinstance(inp.shape[0], str) and inp.shape[1:] == [3, 32, 32]
    for n in (1, 5):
        probs = session.run(None, {"image": np.zeros((n, 3, 32, 32), np.uint8)})[0]
        assert probs.shape == (n, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_parity_numbers_on_real_and_random_images(tiny_exports, fmt):
    report = tiny_exports[fmt].parity
    print(fmt, report.summary())
    assert report.n_real == 8 and report.n_random == 4 and "split.json" in report.real_source
    assert report.max_abs_diff < 1e-4 and report.top1_agreement == 1.0
    assert "parity with PyTorch" in tiny_exports[fmt].summary()


def test_torchscript_metadata_inside_and_beside(tiny_run, tiny_exports):
    import torch

    result = tiny_exports["torchscript"]
    side = tiny_run / "export" / "model.ts.json"
    assert result.extra_files == (side,)
    extra = {"headstart.json": ""}
    torch.jit.load(str(result.path), _extra_files=extra)
    assert json.loads(extra["headstart.json"]) == json.loads(side.read_text())
    assert json.loads(side.read_text())["labels"] == ["cat", "dog", "fox"]


def test_numpy_preprocessing_matches_the_training_pipeline(tmp_path):
    """The torch-free crop equals load_resized + the eval transform's crop, for every crop mode."""
    from torchvision.transforms import v2

    from headstart.data.transforms import Preprocessing, _CropOrPad, _mean_fill, load_resized
    from headstart.export.preprocess import load_image_array

    rng = np.random.default_rng(0)
    for size in ((53, 31), (31, 70), (40, 40)):
        path = tmp_path / f"im{size}.jpg"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        for mode in ("center", "squash", "border"):
            pre = Preprocessing(input_size=24, interpolation="bicubic", crop_pct=0.9, crop_mode=mode)
            crop = _CropOrPad(24, _mean_fill(pre)) if mode == "border" else v2.CenterCrop(24)
            expected = crop(load_resized(path, pre)).numpy()
            np.testing.assert_array_equal(load_image_array(path, pre), expected, err_msg=f"{size} {mode}")


def test_failed_parity_removes_the_file_and_says_so(tiny_run, tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    import headstart.export.onnx as hx
    from headstart.export import ParityError, export_model

    original = hx._export_graph

    def tampered(module, example, path, opset):  # a broken exporter: the classifier's weights changed
        original(module, example, path, opset)
        model = onnx.load(str(path))
        init = next(t for t in model.graph.initializer if len(t.dims) == 2 and t.dims[0] == 3)
        noise = np.random.default_rng(0).normal(0, 1, tuple(init.dims)).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(noise, init.name))
        onnx.save(model, str(path))

    monkeypatch.setattr(hx, "_export_graph", tampered)
    target = tmp_path / "broken.onnx"
    with pytest.raises(ParityError, match=r"failed its check against PyTorch and was removed \(broken.onnx\)"):
        export_model(tiny_run, "onnx", output=target)
    assert not target.exists() and not list(tmp_path.glob(".broken.onnx*"))


def test_export_parameter_errors(tiny_run):
    from headstart.errors import RunFolderError
    from headstart.export import export_model

    with pytest.raises(ConfigError, match=r"The 'format' parameter must be one of \{'onnx', 'torchscript'\}. Got 'onxx'"):
        export_model(tiny_run, "onxx")
    with pytest.raises(ConfigError, match=r"The 'tolerance' parameter must be a float in \(0, inf\). Got -1"):
        export_model(tiny_run, "onnx", tolerance=-1)
    with pytest.raises(RunFolderError, match="does not exist"):
        export_model(tiny_run / "nope", "onnx")


def test_given_images_are_used_for_the_check(tiny_run, tiny_images, tmp_path):
    from headstart.export import export_model

    result = export_model(tiny_run, "onnx", output=tmp_path / "m.onnx", images=[tiny_images / "dog"])
    assert result.parity.real_source == "given images" and result.parity.n_real == 8
    assert result.parity.max_abs_diff < 1e-4
