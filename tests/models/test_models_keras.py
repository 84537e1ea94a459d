"""Keras applications .h5 files: read with h5py, mapped onto timm's vgg16, caffe preprocessing
recorded. The end-to-end tests write the files with Keras 3 itself (torch backend, weights=None)
and compare Keras' outputs after its own ``preprocess_input`` with headstart's preprocessing and
the timm model on the same image."""

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.errors import ConfigError, WeightsMismatchError
from headstart.models import importer, store
from headstart.models.keras_h5 import CAFFE_MEAN_BGR, read_keras_weights

h5py = pytest.importorskip("h5py", reason="h5py (the 'keras' extra) reads Keras files")
needs_keras = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None,
    reason="keras is not installed (pip install keras; the 'dev' extra has it)",
)


@pytest.fixture
def keras(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # read once, at Keras' first import
    import keras

    if keras.backend.backend() != "torch":  # pragma: no cover - imported earlier with another backend
        pytest.skip(f"keras was imported with the {keras.backend.backend()!r} backend")
    keras.utils.set_random_seed(0)
    return keras


def _write_legacy(path: Path, layers: dict[str, list[tuple[str, np.ndarray]]]) -> Path:
    """The layout of the Keras applications files: layer groups, ``weight_names`` such as
    ``block1_conv1/kernel:0`` (datasets at ``block1_conv1/block1_conv1/kernel:0``)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for name, weights in layers.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for w, value in weights:
                group.create_dataset(w, data=value)
    return path


def _legacy_from_keras(model, path: Path) -> Path:
    """What the applications files hold, built with h5py from the Keras model's weights (Keras 3
    no longer writes this exact naming: its legacy writer drops the ``:0`` suffix)."""
    return _write_legacy(
        path,
        {
            layer.name: [(f"{layer.name}/{v.name}:0", np.asarray(v.numpy())) for v in layer.weights]
            for layer in model.layers
            if layer.weights
        },
    )


def _image(tmp_path: Path, size: int) -> tuple[np.ndarray, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return pixels, path


def _headstart_input(model, image_path: Path, size: int) -> torch.Tensor:
    """The image through headstart's own preprocessing for ``model`` (read from the recorded
    weights); crop_pct=1 so that an image already at the input size is not resized."""
    from headstart.data.transforms import Preprocessing, build_eval_transform, load_resized

    pre = dataclasses.replace(Preprocessing.from_model(model, size), crop_pct=1.0)
    return build_eval_transform(pre)(load_resized(image_path, pre)).unsqueeze(0)


def _stored_model(record):
    from headstart.models.build import create_model
    from headstart.models.resolve import ResolvedWeights

    weights = ResolvedWeights(record.model, "store", record.path, record.sha256)
    return create_model(record.model, 1000, weights=weights, keep_head=True).eval()


@needs_keras
@pytest.mark.slow
def test_keras_vgg16_notop_files_match_keras(keras, tmp_path, store_root):
    size = 32
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    files = [  # (Keras 3's legacy whole-model .h5, weights under model_weights/: the other tests)
        _legacy_from_keras(model, tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        tmp_path / "keras3.weights.h5",  # Keras 3's own format: layers/<name>/vars/<i>
    ]
    model.save_weights(str(files[1]))
    pixels, image_path = _image(tmp_path, size)
    expected = keras.ops.convert_to_numpy(
        model(keras.applications.vgg16.preprocess_input(pixels[None].astype("float32")), training=False)
    )
    for file in files:
        record = importer.import_weights(file, "vgg16", store_root=store_root)
        assert record.mapping == "keras"
        assert record.mapped == {"transposed": 13, "by order": 13}
        assert any("include_top=False" in n for n in record.notes)
        assert np.allclose(np.array(record.preprocessing["mean"]) * 255, CAFFE_MEAN_BGR[::-1])
        tm = _stored_model(record)
        with torch.no_grad():
            got = tm.forward_features(_headstart_input(tm, image_path, size)).permute(0, 2, 3, 1).numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-3 * max(1.0, np.abs(expected).max()), rtol=0)


@needs_keras
@pytest.mark.slow
def test_keras_vgg16_with_top_matches_keras_logits(keras, tmp_path, store_root):
    """The full applications model: the Flatten (H, W, C) -> conv (C, H, W) permutation and the
    Dense transposes, compared on logits (classifier_activation=None) at 224 px."""
    model = keras.applications.VGG16(weights=None, classifier_activation=None)
    file = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    model.save(str(file))  # Keras 3's legacy HDF5 writer
    pixels, image_path = _image(tmp_path, 224)
    expected = keras.ops.convert_to_numpy(
        model(keras.applications.vgg16.preprocess_input(pixels[None].astype("float32")), training=False)
    )
    del model
    record = importer.import_weights(file, "vgg16", store_root=store_root)
    assert record.mapped == {"transposed": 15, "by order": 16, "by reshape": 1}
    assert any("fc1" in n and "Flatten H,W,C" in n for n in record.notes)
    tm = _stored_model(record)
    with torch.no_grad():
        got = tm(_headstart_input(tm, image_path, 224)).numpy()
    scale = np.abs(expected).max()
    assert scale > 1e-3  # a meaningful comparison: the logits are not all ~0
    np.testing.assert_allclose(got, expected, atol=1e-3 * max(1.0, scale), rtol=0)
    assert got.argmax() == expected.argmax()


# ------------------------------------------------------------------ refusals (no Keras needed)
def _tiny_resnet_keras_file(path: Path) -> Path:
    z = np.zeros
    return _write_legacy(
        path,
        {
            "conv1_conv": [("conv1_conv/kernel:0", z((7, 7, 3, 4), "f4")), ("conv1_conv/bias:0", z(4, "f4"))],
            "conv1_bn": [(f"conv1_bn/{n}:0", z(4, "f4")) for n in ("gamma", "beta", "moving_mean", "moving_variance")],
            "conv2_block1_1_conv": [
                ("conv2_block1_1_conv/kernel:0", z((1, 1, 4, 8), "f4")),
                ("conv2_block1_1_conv/bias:0", z(8, "f4")),
            ],
        },
    )


def test_keras_resnet50_file_for_another_model_or_width_is_refused(tmp_path, store_root):
    file = _tiny_resnet_keras_file(tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5")
    assert [x.name for x in read_keras_weights(file)] == ["conv1_conv", "conv1_bn", "conv2_block1_1_conv"]
    with pytest.raises(
        WeightsMismatchError,
        match=r"holds Keras' ResNet50; import it as --model resnet50"
        r" \(got 'vgg11'\)",
    ):
        importer.import_weights(file, "vgg11", store_root=store_root)
    with pytest.raises(
        WeightsMismatchError,
        match=r"The Keras tensor for timm's 'conv1\.weight' has shape"
        r" \(4, 3, 7, 7\) after the layout conversion, timm's has"
        r" \(64, 3, 7, 7\)",
    ):
        importer.import_weights(file, "resnet50", store_root=store_root)
    assert not (store_root / "index.json").exists()


def test_keras_file_for_another_architecture_is_refused(tmp_path, store_root):
    file = _write_legacy(tmp_path / "x.h5", {"dense": [("dense/kernel:0", np.zeros((4, 2), "f4"))]})
    with pytest.raises(
        WeightsMismatchError,
        match=r"onto timm.s resnet50 and its VGG models without BatchNorm.*got model"
        r" 'test_resnet'",
    ):
        importer.import_weights(file, "test_resnet", store_root=store_root)


def test_keras_file_with_the_wrong_vgg_depth_is_refused(tmp_path, store_root):
    layers = {
        f"block1_conv{i}": [(f"k{i}:0", np.zeros((3, 3, 3, 64), "f4")), (f"b{i}:0", np.zeros(64, "f4"))]
        for i in range(3)
    }
    file = _write_legacy(tmp_path / "vgg.h5", layers)
    with pytest.raises(
        WeightsMismatchError,
        match=r"has 3 Conv2D and 0 Dense layers; timm's 'vgg11' has 8"
        r" convolutions",
    ):
        importer.import_weights(file, "vgg11", store_root=store_root)


def test_not_a_keras_file_and_wrong_mapping(tmp_path, store_root):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(2))
    with pytest.raises(
        WeightsMismatchError,
        match=r"is not a Keras weights file: it has neither a"
        r" 'layer_names' attribute",
    ):
        read_keras_weights(plain)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(WeightsMismatchError, match=r"cannot be read as HDF5"):
        read_keras_weights(broken)
    with pytest.raises(
        ConfigError,
        match=r"mapping='by-order' does not fit the file .*plain\.h5.*is imported"
        r" with mapping='keras'",
    ):
        importer.import_weights(plain, "vgg11", mapping="by-order", store_root=store_root)


def test_recorded_preprocessing_is_read_from_the_file_and_listed(tmp_path):
    from safetensors.torch import save_file

    from headstart.models.keras_h5 import caffe_preprocessing

    path = tmp_path / "w.safetensors"
    pre = caffe_preprocessing()
    save_file(
        {"w": torch.zeros(1)}, str(path), metadata={"headstart": __import__("json").dumps({"preprocessing": pre})}
    )
    assert store.recorded_preprocessing(path)["std"] == pytest.approx([1 / 255] * 3)
    save_file({"w": torch.zeros(1)}, str(path))
    assert store.recorded_preprocessing(path) is None
    assert store.describe_preprocessing(pre) == "RGB mean 123.68,116.779,103.939 std 1,1,1 (0-255)"
    assert store.describe_preprocessing(None) == "timm"
    assert store.describe_mapping({"by reshape": 2, "by order": 30}) == "30 by order, 2 by reshape"


@needs_keras
@pytest.mark.slow
def test_cli_import_list_fit_predict_with_keras_weights(keras, tmp_path, image_folder, monkeypatch):
    """A user's path: import a Keras notop file, see what was mapped and recorded, fit vgg16 on
    small images from the store; the run saves Keras' normalisation (which predict applies)."""
    import json

    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    file = _legacy_from_keras(model, tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    env = {**os.environ, "HEADSTART_WEIGHTS_DIR": str(tmp_path / "store")}

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True, env=env, timeout=900
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    out = cli("weights", "import", file, "--model", "vgg16")
    assert "mapped (keras): 13 by order, 13 transposed" in out
    assert "input channels BGR -> RGB" in out
    assert "preprocessing: recorded RGB mean 123.68,116.779,103.939 std 1,1,1 (0-255)" in out
    listing = cli("weights", "list")
    row = next(line for line in listing.splitlines() if line.startswith("vgg16 "))
    assert "13 by order, 13 transposed" in row and "RGB mean 123.68" in row
    run = tmp_path / "run"
    cli(
        "fit",
        image_folder,
        "--model",
        "vgg16",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--strategy",
        "linear-probe",
        "--probe-epochs",
        "1",
        "--quiet",
        "--out",
        run,
    )
    saved = json.loads((run / "model" / "preprocessing.json").read_text())
    assert np.allclose(np.array(saved["mean"]) * 255, CAFFE_MEAN_BGR[::-1])
    assert np.allclose(saved["std"], [1 / 255] * 3)
    # (predict on a run from Keras weights: test_fit_resnet50_from_keras_weights_saves_the_architecture)
    # what expects a model's preprocessing (the doctor's checks) expects the stored weights' own
    from headstart.models.resolve import pretrained_cfg

    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", env["HEADSTART_WEIGHTS_DIR"])
    assert np.allclose(pretrained_cfg("vgg16")["std"], [1 / 255] * 3)
    monkeypatch.setenv("HEADSTART_WEIGHTS_DIR", str(tmp_path / "empty-store"))
    assert np.allclose(pretrained_cfg("vgg16")["std"], (0.229, 0.224, 0.225))


# ------------------------------------------------------------------------------- ResNet50
def _randomise(keras, model, seed=0):
    """Give every bias and BatchNorm statistic a non-trivial value (Keras initialises biases and
    moving means to 0 and variances to 1, which would leave the bias folding untested)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name, shape = v.path.rsplit("/", 1)[-1], tuple(v.shape)
        if name in ("bias", "beta", "moving_mean"):
            v.assign(rng.normal(0, 0.1, shape).astype("float32"))
        elif name == "gamma":
            v.assign(rng.uniform(0.8, 1.2, shape).astype("float32"))
        elif name == "moving_variance":
            v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))


def _old_name(name: str) -> str:
    """The layer names of the original 2016 resnet50 applications file (res2a_branch2a, ...)."""
    import re

    special = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"}
    if name in special:
        return special[name]
    m = re.match(r"conv(\d)_block(\d+)_(\d)_(conv|bn)$", name)
    if not m:
        return name
    branch = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}[m.group(3)]
    kind = "res" if m.group(4) == "conv" else "bn"
    return f"{kind}{m.group(1)}{chr(ord('a') + int(m.group(2)) - 1)}_branch{branch}"


@needs_keras
@pytest.mark.slow
def test_keras_resnet50_matches_keras_logits(keras, tmp_path, store_root):
    """Keras' ResNet v1 downsampling reproduced by dilation, conv biases folded into BatchNorm,
    Keras' epsilon handled: the timm model gives Keras' logits, from both naming schemes."""
    size = 64
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    _randomise(keras, model)
    new = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    model.save(str(new))
    old = _write_legacy(
        tmp_path / "resnet50_old_names.h5",
        {
            _old_name(layer.name): [
                (f"{_old_name(layer.name)}/{v.name}:0", np.asarray(v.numpy())) for v in layer.weights
            ]
            for layer in model.layers
            if layer.weights
        },
    )
    pixels, image_path = _image(tmp_path, size)
    expected = keras.ops.convert_to_numpy(
        model(keras.applications.resnet50.preprocess_input(pixels[None].astype("float32")), training=False)
    )
    del model
    for file in (new, old):
        record = importer.import_weights(file, "resnet50", store_root=store_root)
        assert record.conv_dilation == {"layer2.0.conv2": 2, "layer3.0.conv2": 2, "layer4.0.conv2": 2}
        assert record.mapped == {"transposed": 54, "by name": 107, "folded": 106}
        assert any("epsilon 1.001e-05" in n for n in record.notes)
        tm = _stored_model(record)
        assert tm.layer3[0].conv2.dilation == (2, 2) and tm.layer3[1].conv2.dilation == (1, 1)
        with torch.no_grad():
            got = tm(_headstart_input(tm, image_path, size)).numpy()
        scale = np.abs(expected).max()
        assert scale > 1e-2
        np.testing.assert_allclose(got, expected, atol=1e-3 * max(1.0, scale), rtol=0)


@needs_keras
@pytest.mark.slow
def test_fit_resnet50_from_keras_weights_saves_the_architecture(keras, tmp_path, image_folder):
    """fit from a Keras ResNet50 notop file: the run's model.json records the dilations, so
    predict and export rebuild the network the weights need."""
    import json

    from headstart.tasks.classification.export import load_run_model

    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    file = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    model.save(str(file))
    env = {**os.environ, "HEADSTART_WEIGHTS_DIR": str(tmp_path / "store")}

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True, env=env, timeout=900
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    out = cli("weights", "import", file, "--model", "resnet50")
    assert "mapped (keras): 106 by name, 53 transposed, 106 folded" in out
    assert "dilation 2, padding 2 in layer2.0.conv2, layer3.0.conv2, layer4.0.conv2" in out
    run = tmp_path / "run"
    cli(
        "fit",
        image_folder,
        "--model",
        "resnet50",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--strategy",
        "linear-probe",
        "--probe-epochs",
        "1",
        "--quiet",
        "--out",
        run,
    )
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["conv_dilation"] == {"layer2.0.conv2": 2, "layer3.0.conv2": 2, "layer4.0.conv2": 2}
    rebuilt, record = load_run_model(run)
    assert rebuilt.layer4[0].conv2.dilation == (2, 2) and rebuilt.layer4[0].conv2.padding == (2, 2)
    assert np.allclose(np.array(record["preprocessing"].mean) * 255, CAFFE_MEAN_BGR[::-1])
    preds = json.loads(cli("predict", run, image_folder / "dog" / "dog_000.png", "--format", "json"))
    assert preds[0]["label"] in ("cat", "dog", "fox")
