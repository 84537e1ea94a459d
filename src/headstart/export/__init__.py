"""Portable artefacts from a run folder: ONNX and TorchScript files with the preprocessing inside.

Entry points (imported lazily; torch and onnx load only when an export runs):

- :func:`export_onnx` / :func:`export_torchscript` / :func:`export_model` write ``RUN/export/model.onnx``
  or ``RUN/export/model.ts`` (+ ``model.ts.json``) and verify them against the PyTorch model.
- :func:`load_image_array` (numpy + Pillow only) prepares an image exactly as training did, up to the
  uint8 crop the exported graphs take as input.

The exported graphs take **uint8 RGB images, NCHW, at the model's input size** (values 0..255, any
batch size) and return **class probabilities** ``(N, num_classes)``: scaling to [0, 1], the
mean/std normalisation and the softmax (or the sigmoid of a binary head) are inside the graph. What
stays outside is decoding and the resize + centre crop, which need the image's own size.
"""

from __future__ import annotations

from headstart._lazy import attach

_LAZY = {
    "export_model": "headstart.export.api",
    "export_onnx": "headstart.export.onnx",
    "export_torchscript": "headstart.export.torchscript",
    "ExportResult": "headstart.export.parity",
    "ParityError": "headstart.export.parity",
    "build_metadata": "headstart.export.metadata",
    "read_onnx_metadata": "headstart.export.metadata",
    "load_image_array": "headstart.export.preprocess",
    "prepare_image": "headstart.export.preprocess",
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
