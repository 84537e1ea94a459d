"""How exactly `headstart weights import` reproduces the source framework's model, and what it costs.

For each source, a model with random weights is built by the source library itself (nothing is
downloaded: torchvision ``weights=None``, Keras 3 on the torch backend ``weights=None``), saved as
the file users have, imported into a temporary store, and the timm model built from the store
(``create_model``, the recorded preprocessing) is run on the same random image as the source:

* torchvision ``vgg16-*.pth`` / ``resnet50-*.pth`` -> timm vgg16 / resnet50 (``--map by-order``),
  logits on a 64 px input;
* Keras ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` (Keras 3's legacy HDF5 writer, with top,
  224 px) and ``resnet50_...h5`` (64 px, every bias and BatchNorm statistic randomised so that the
  folding matters), Keras' ``preprocess_input`` (caffe) against headstart's preprocessing; logits
  (``classifier_activation=None``). For ResNet50 also without the dilation (what a plain mapping
  onto timm's v1.5 resnet50 would give).

Reported: max |difference| of the outputs, max |output| (the scale), top-1 agreement, and the
import's wall and CPU time (the import includes the verification forward pass at 224 px).

    OMP_NUM_THREADS=1 python benchmarks/weights_conversion.py

Writes benchmarks/results/weights_conversion.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)


def _stored_model(record):
    from headstart.models.build import create_model
    from headstart.models.resolve import ResolvedWeights

    weights = ResolvedWeights(record.model, "store", record.path, record.sha256)
    return create_model(record.model, 1000, weights=weights, keep_head=True).eval()


def _row(name, got, expected, record, wall, cpu, **extra):
    import numpy as np

    return {
        "case": name,
        "max_abs_diff": float(np.abs(got - expected).max()),
        "output_scale": float(np.abs(expected).max()),
        "top1_agrees": bool((got.argmax(-1) == expected.argmax(-1)).all()),
        "mapped": record.mapped,
        "import_wall_s": wall,
        "import_cpu_s": cpu,
        **extra,
    }


def torchvision_cases(tmp: Path) -> list[dict]:
    import torch
    import torchvision

    from headstart.models.importer import import_weights

    rows = []
    for name in ("vgg16", "resnet50"):
        torch.manual_seed(0)
        ref = getattr(torchvision.models, name)(weights=None).eval()
        path = tmp / f"{name}-0123abcd.pth"
        torch.save(ref.state_dict(), path)
        record, wall, cpu = _timed(import_weights, path, name, mapping="by-order", store_root=tmp / "store")
        model = _stored_model(record)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            rows.append(_row(f"torchvision {name}", model(x).numpy(), ref(x).numpy(), record, wall, cpu))
    return rows


def _image(tmp: Path, size: int):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path = tmp / f"photo{size}.png"
    Image.fromarray(pixels).save(path)
    return pixels, path


def _headstart_input(model, path: Path, size: int):
    from headstart.data.transforms import Preprocessing, build_eval_transform, load_resized

    pre = dataclasses.replace(Preprocessing.from_model(model, size), crop_pct=1.0)
    return build_eval_transform(pre)(load_resized(path, pre)).unsqueeze(0)


def keras_cases(tmp: Path) -> list[dict]:
    import keras
    import numpy as np
    import torch

    from headstart.models.importer import import_weights

    keras.utils.set_random_seed(0)
    rows = []
    for name, size, app, pre_fn in (
        ("vgg16", 224, keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
        ("resnet50", 64, keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    ):
        source = app(weights=None, input_shape=(size, size, 3), classifier_activation=None)
        if name == "resnet50":
            rng = np.random.default_rng(0)
            for v in source.weights:
                kind, shape = v.path.rsplit("/", 1)[-1], tuple(v.shape)
                if kind in ("bias", "beta", "moving_mean"):
                    v.assign(rng.normal(0, 0.1, shape).astype("float32"))
                elif kind == "gamma":
                    v.assign(rng.uniform(0.8, 1.2, shape).astype("float32"))
                elif kind == "moving_variance":
                    v.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        path = tmp / f"{name}_weights_tf_dim_ordering_tf_kernels.h5"
        source.save(str(path))
        pixels, image = _image(tmp, size)
        expected = keras.ops.convert_to_numpy(source(pre_fn(pixels[None].astype("float32")), training=False))
        del source
        record, wall, cpu = _timed(import_weights, path, name, store_root=tmp / "store")
        model = _stored_model(record)
        x = _headstart_input(model, image, size)
        with torch.no_grad():
            rows.append(_row(f"keras {name}", model(x).numpy(), expected, record, wall, cpu, size=size))
            if record.conv_dilation:
                for module in record.conv_dilation:
                    conv = model.get_submodule(module)
                    conv.dilation, conv.padding = (1, 1), (1, 1)
                rows.append(_row(f"keras {name} without the dilation", model(x).numpy(), expected, record, 0, 0))
    return rows


def main() -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="hs-weights-bench-") as tmp:
        rows = torchvision_cases(Path(tmp))
        rows += keras_cases(Path(tmp))
    import keras
    import timm

    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch {torch.__version__}, "
        f"timm {timm.__version__}, keras {keras.__version__}",
        "rows": rows,
    }
    text = json.dumps(out, indent=2)
    print(text)
    target = ROOT / "benchmarks" / "results" / "weights_conversion.json"
    target.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
