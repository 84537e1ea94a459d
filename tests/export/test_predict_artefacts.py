"""`predict` on each artefact type (run folder, .onnx, .ts) gives what the run folder gives, including
from a Python that cannot import torch, and through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.export.conftest import BLOCK_TORCH

REPO = Path(__file__).resolve().parents[2]


def _probs(preds):
    return np.array([p.probs for p in preds])


def test_each_artefact_predicts_like_the_run_folder(tiny_run, tiny_exports, tiny_images):
    from headstart.predict import Predictor, load_predictor

    reference = Predictor.from_run(tiny_run).predict([tiny_images], top_k=3, batch_size=7)
    assert len(reference) == 48
    for path, kind in ((tiny_run / "export" / "model.onnx", "onnx"), (tiny_run / "export" / "model.ts", "torchscript")):
        predictor = load_predictor(path)
        assert predictor.kind == kind and predictor.classes == ["cat", "dog", "fox"]
        preds = predictor.predict([tiny_images], top_k=3, batch_size=7)
        assert [p.path for p in preds] == [p.path for p in reference]
        assert [p.labels[0] for p in preds] == [p.labels[0] for p in reference]
        np.testing.assert_allclose(_probs(preds), _probs(reference), atol=1e-5)


def test_unknown_or_foreign_model_files_are_refused(tiny_run, tmp_path):
    import onnx

    from headstart.export.metadata import InvalidModelError
    from headstart.predict import load_predictor

    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(InvalidModelError, match=r"Cannot tell what kind of model .*model.bin.* from its suffix '.bin'"):
        load_predictor(odd)
    bare = onnx.load(str(tiny_run / "export" / "model.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(InvalidModelError, match="has no headstart metadata"):
        load_predictor(tmp_path / "bare.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(InvalidModelError, match="onnxruntime cannot load"):
        load_predictor(broken)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_predictor(tmp_path / "missing.onnx")


def test_onnx_predict_works_without_torch(tiny_run, tiny_exports, tiny_images):
    """A Python whose import of torch/timm/torchvision fails predicts from the .onnx alone, through
    the API and the CLI, with the run folder's top-1."""
    from headstart.predict import Predictor

    onnx_path = tiny_run / "export" / "model.onnx"
    code = BLOCK_TORCH + f"""
import json
from headstart.predict import load_predictor
from headstart.cli import main
preds = load_predictor({str(onnx_path)!r}).predict([{str(tiny_images)!r}], top_k=2)
assert main(['predict', {str(onnx_path)!r}, {str(tiny_images / 'cat')!r}, '--format', 'csv', '-o', 'out.csv']) == 0
blocked = [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'torchvision')]
print(json.dumps({{'labels': [p.labels[0] for p in preds], 'probs': [p.probs for p in preds], 'blocked': blocked}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tiny_run, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["blocked"] == []
    reference = Predictor.from_run(tiny_run).predict([tiny_images], top_k=2)
    assert out["labels"] == [p.labels[0] for p in reference]
    np.testing.assert_allclose(np.array(out["probs"]), _probs(reference), atol=1e-5)
    rows = (tiny_run / "out.csv").read_text().splitlines()
    assert rows[0] == "path,rank,label,prob,error" and len(rows) == 1 + 16


def test_the_blocker_really_blocks_torch():
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import torch"], capture_output=True, text=True)
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "headstart", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd or REPO)


def test_cli_export_then_predict_json(tiny_run, tiny_images, tmp_path):
    from headstart.predict import Predictor

    proc = _cli("export", tiny_run, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert proc.returncode == 0, proc.stderr
    assert "parity with PyTorch: max |dprob|" in proc.stdout and (tmp_path / "m.onnx").is_file()
    dog = tiny_images / "dog"
    proc = _cli("predict", tmp_path / "m.onnx", dog, "--format", "json", "--batch-size", "5", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    got = [(p["path"], p["label"]) for p in json.loads(proc.stdout)]
    reference = [(p.path, p.labels[0]) for p in Predictor.from_run(tiny_run).predict([dog])]
    assert len(got) == 16 and got == reference


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["export", "{run}", "--format", "tflite"], 2, "The 'format' parameter must be one of {'onnx', 'torchscript'}. Got 'tflite'."),
        (["export", "{run}", "--opset", "7"], 2, "The 'opset' parameter must be an int in [13, 23]. Got 7."),
        (["export", "{run}/nope"], 1, "does not exist"),
        (["predict", "{run}/model/labels.json", "{run}"], 1, "Cannot tell what kind of model"),
    ],
)
def test_cli_errors(tiny_run, args, code, message):
    proc = _cli(*[a.format(run=tiny_run) for a in args])
    assert proc.returncode == code and message in proc.stderr, proc.stderr
