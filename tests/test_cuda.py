"""The CUDA paths end to end: AMP, channels_last, DataLoader workers, resume and prediction on the
GPU. Marked ``gpu``: skipped (with the reason) on machines without CUDA."""

import json

import pytest
import torch

import headstart

GPU = dict(model="test_resnet", image_size=32, batch_size=8, probe_epochs=2, device="cuda")


@pytest.mark.gpu
def test_fit_on_cuda_with_workers_amp_and_channels_last(image_folder, weights_env, tmp_path):
    result = headstart.fit(image_folder, strategy="full", epochs=6, lr=3e-3, num_workers=2, out=tmp_path / "r",
                           verbose=False, **GPU)
    cfg = headstart.build_config(config=tmp_path / "r" / "config.yaml")
    assert cfg.data.num_workers == 2 and cfg.train.amp and cfg.train.channels_last
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    assert all(r["images_per_s"] > 0 for r in result.history)
    # the run folder predicts the same on the GPU and on the CPU (bf16 autocast only in training)
    some = sorted((image_folder / "fox").iterdir())[:4]
    on_gpu = headstart.load(tmp_path / "r", device="cuda").predict(some)
    on_cpu = headstart.load(tmp_path / "r", device="cpu").predict(some)
    assert [p.labels for p in on_gpu] == [p.labels for p in on_cpu]
    for a, b in zip(on_gpu, on_cpu):
        assert a.probs == pytest.approx(b.probs, abs=1e-3)


@pytest.mark.gpu
def test_cuda_workers_do_not_change_the_result(image_folder, weights_env, tmp_path):
    """Augmentation is seeded per (seed, epoch, worker): the same run with 0 and 2 workers sees the
    same images; only float reduction order on the GPU differs."""
    runs = [headstart.fit(image_folder, strategy="linear-probe", num_workers=w, out=tmp_path / f"w{w}",
                          verbose=False, **GPU) for w in (0, 2)]
    a, b = (r.history for r in runs)
    assert [r["val_accuracy"] for r in a] == pytest.approx([r["val_accuracy"] for r in b], abs=0.07)


@pytest.mark.gpu
def test_cuda_resume_continues_the_run(image_folder, weights_env, tmp_path):
    from headstart.engine.callbacks import Callback

    class Interrupt(Callback):
        def on_epoch_end(self, trainer, row):
            if row["epoch"] == 2:
                raise KeyboardInterrupt

    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        headstart.fit(image_folder, strategy="full", epochs=4, patience=100, out=out, verbose=False,
                      callbacks=[Interrupt()], **GPU)
    assert not (out / "metrics.json").exists()
    resumed = headstart.fit(resume=True, out=out, verbose=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert json.loads((out / "metrics.json").read_text())["n_test"] > 0


@pytest.mark.gpu
def test_bf16_autocast_is_used_for_features(image_folder, weights_env):
    from headstart.engine.device import resolve_device

    dev = resolve_device("cuda")
    assert dev.amp_dtype in (torch.bfloat16, torch.float16)
    assert resolve_device("cuda", amp=False).amp_dtype is None
    assert not resolve_device("cpu").channels_last
