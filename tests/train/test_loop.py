"""The Trainer on in-memory batches with a tiny timm model: stages, probing on cached features,
layer decay, early stopping, frozen BatchNorm, divergence, checkpoints."""

import pytest
import timm
import torch

from headstart.config import TrainConfig
from headstart.train.callbacks import EarlyStopping, StageFreezer
from headstart.train.device import resolve_device
from headstart.train.loop import Trainer, TrainingDiverged
from headstart.train.strategies import plan_stages


def _batches(n=24, classes=3, size=32, seed=0, bs=8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 3, size, size, generator=g) + y.view(-1, 1, 1, 1) * 0.5
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)]


class CountingLoader:
    """A list of batches that counts how often it is iterated."""

    def __init__(self, batches):
        self.batches, self.iterations = batches, 0

    def __iter__(self):
        self.iterations += 1
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def make_trainer(strategy="full", classes=3, callbacks=None, checkpoint_dir=None, **train):
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=1 if classes == 2 else classes)
    cfg = TrainConfig(batch_size=8, device="cpu", **train)
    loaders = {k: CountingLoader(_batches(classes=classes, seed=i)) for i, k in enumerate(("train", "train_eval", "val"))}
    trainer = Trainer(
        model, plan_stages(cfg, strategy), cfg, num_classes=classes, dev=resolve_device("cpu"),
        make_loader=lambda kind, seed=0: loaders[kind],
        callbacks=callbacks if callbacks is not None else [StageFreezer(cfg.freeze_bn), EarlyStopping(cfg.monitor, cfg.patience)],
        checkpoint_dir=checkpoint_dir,
    )
    return trainer, loaders


def test_probe_extracts_features_once_and_trains_only_the_head():
    trainer, loaders = make_trainer("linear-probe", probe_epochs=6, patience=None)
    backbone_before = {k: v.clone() for k, v in trainer.model.state_dict().items() if not k.startswith("fc.")}
    calls = []
    trainer.model.register_forward_hook(lambda *a: calls.append(1))
    trainer.model.conv1.register_forward_hook(lambda *a: calls.append("backbone"))
    state = trainer.fit()
    assert len(state.history) == 6
    # the backbone ran once over train_eval and once over val, not once per epoch
    assert loaders["train_eval"].iterations == 1 and loaders["val"].iterations == 1
    assert loaders["train"].iterations == 0
    assert calls.count("backbone") == len(loaders["train_eval"]) + len(loaders["val"])
    after = trainer.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in backbone_before.items())


def test_lp_ft_runs_both_stages_and_keeps_the_best():
    trainer, _ = make_trainer("lp-ft", probe_epochs=3, epochs=2, patience=None)
    state = trainer.fit()
    assert [r["stage"] for r in state.history] == ["probe"] * 3 + ["finetune"] * 2
    best = min(r["val_loss"] for r in state.history)
    assert state.best_value == pytest.approx(best)


def test_layer_decay_gives_per_layer_lr_scales():
    trainer, _ = make_trainer("full", epochs=1, layer_decay=0.5)
    trainer._setup_optimizer(trainer.stages[0], restore=False)
    scales = sorted({g.get("lr_scale", 1.0) for g in trainer.optimizer.param_groups})
    assert len(scales) >= 3 and scales[-1] == 1.0 and scales[0] < 0.2


def test_early_stopping_stops_the_stage():
    trainer, _ = make_trainer("full", epochs=20, lr=1e-9, warmup_epochs=0, patience=2, monitor="val_accuracy")
    state = trainer.fit()
    assert len(state.history) < 20
    stopper = EarlyStopping("val_loss", patience=2)

    class T:  # the callback only needs the trainer's state
        state = type("S", (), {"stage_best": None, "bad_epochs": 0, "stop_stage": False, "epoch": 0})()

    for loss in (1.0, 0.9, 0.95, 0.91):
        stopper.on_epoch_end(T, {"val_loss": loss})
    assert T.state.stop_stage and T.state.stage_best == 0.9


def test_freeze_bn_keeps_running_statistics():
    trainer, _ = make_trainer("full", epochs=1, freeze_bn=True)
    bn = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    trainer.fit()
    assert torch.equal(bn.running_mean, before)
    trainer2, _ = make_trainer("full", epochs=1, freeze_bn=False)
    bn2 = [m for m in trainer2.model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before2 = bn2.running_mean.clone()
    trainer2.fit()
    assert not torch.equal(bn2.running_mean, before2)


def test_nan_loss_raises_training_diverged(monkeypatch):
    trainer, _ = make_trainer("full", epochs=1)
    monkeypatch.setattr(trainer.loss_fn, "forward", lambda logits, target, smoothing=True: logits.sum() * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"The training loss became nan at step 0 .* Lower the learning rate"):
        trainer.fit()


def test_binary_head_trains_with_one_logit():
    trainer, _ = make_trainer("full", classes=2, epochs=2)
    state = trainer.fit()
    assert trainer.model.get_classifier().out_features == 1
    assert all(0 <= r["val_accuracy"] <= 1 for r in state.history)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    trainer, _ = make_trainer("full", epochs=1, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(Exception, match=r"Cannot resume: no checkpoint at .*last.pt"):
        trainer.fit(resume=True)


@pytest.mark.gpu
def test_cuda_amp_channels_last_step():
    dev = resolve_device("cuda")
    assert dev.amp_dtype is not None and dev.channels_last
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    cfg = TrainConfig(batch_size=8, device="cuda", epochs=1)
    batches = _batches()
    trainer = Trainer(model, plan_stages(cfg, "full"), cfg, num_classes=3, dev=dev,
                      make_loader=lambda kind, seed=0: batches, callbacks=[StageFreezer()])
    state = trainer.fit()
    assert next(trainer.model.parameters()).is_cuda and len(state.history) == 1
