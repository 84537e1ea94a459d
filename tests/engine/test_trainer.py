"""The Trainer on in-memory batches with a tiny timm model and the classification task: stages,
probing on cached features, layer decay, early stopping in the task's metric direction, frozen
BatchNorm, divergence, checkpoints with the grad scaler and callback states."""

import pytest
import timm
import torch

from headstart.config import TrainConfig
from headstart.engine.callbacks import Callback, EarlyStopping
from headstart.engine.device import DeviceSettings, resolve_device
from headstart.engine.protocol import StepOutput
from headstart.engine.stages import Stage
from headstart.engine.trainer import Trainer, TrainingDiverged
from headstart.errors import ConfigError
from headstart.tasks.classification.strategies import plan_stages
from headstart.tasks.classification.task import ClassificationTask


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


def make_trainer(strategy="full", classes=3, callbacks=None, checkpoint_dir=None, dev=None, **train):
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=1 if classes == 2 else classes)
    cfg = TrainConfig(batch_size=8, device="cpu", **train)
    loaders = {k: CountingLoader(_batches(classes=classes, seed=i)) for i, k in enumerate(("train", "train_eval", "val"))}
    dev = dev or resolve_device("cpu")
    task = ClassificationTask(model, num_classes=classes, make_loader=lambda kind, seed=0: loaders[kind], dev=dev, cfg=cfg)
    trainer = Trainer(
        task, plan_stages(cfg, strategy), cfg, dev=dev,
        callbacks=callbacks if callbacks is not None else [EarlyStopping(cfg.monitor, cfg.patience)],
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
    assert set(state.history[0]) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1", "lr"}


def test_layer_decay_gives_per_layer_lr_scales():
    trainer, _ = make_trainer("full", epochs=1, layer_decay=0.5)
    trainer._setup_optimizer(trainer.stages[0], restore=False)
    scales = sorted({g.get("lr_scale", 1.0) for g in trainer.optimizer.param_groups})
    assert len(scales) >= 3 and scales[-1] == 1.0 and scales[0] < 0.2


def test_early_stopping_stops_the_stage():
    trainer, _ = make_trainer("full", epochs=20, lr=1e-9, warmup_epochs=0, patience=2, monitor="val_accuracy")
    state = trainer.fit()
    assert len(state.history) < 20


class _Tables:
    """A stand-in trainer for EarlyStopping: a task's metric table and the trainer's state."""

    def __init__(self, table):
        self.task = type("Task", (), {"metric_directions": table})()
        self.state = type("State", (), {"stop_stage": False, "epoch": 0})()


@pytest.mark.parametrize("metric, direction, values, best", [
    ("val_loss", "min", (1.0, 0.9, 0.95, 0.91), 0.9),
    ("val_accuracy", "max", (0.5, 0.7, 0.6, 0.65), 0.7),
    # a lower-is-better metric other than val_loss (a detection task's, say): read from the table, not
    # guessed from the name (before, every metric but val_loss counted as higher-is-better)
    ("val_error", "min", (0.5, 0.3, 0.4, 0.35), 0.3),
])
def test_early_stopping_follows_the_task_metric_direction(metric, direction, values, best):
    stopper = EarlyStopping(metric, patience=2)
    trainer = _Tables({metric: direction})
    for v in values:
        stopper.on_epoch_end(trainer, {metric: v})
    assert trainer.state.stop_stage and stopper.stage_best == best and stopper.bad_epochs == 2


def test_monitor_must_be_one_of_the_task_metrics():
    with pytest.raises(ConfigError, match=r"'train.monitor' parameter must be one of the 'this' task's validation"
                                          r" metrics .*Got 'val_acc'.*Did you mean 'val_accuracy'"):
        trainer, _ = make_trainer("full", epochs=1)
        Trainer(trainer.task, trainer.stages, trainer.cfg.model_copy(update={"monitor": "val_acc"}), dev=trainer.dev)


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


def test_freeze_bn_auto_freezes_batchnorm_after_a_probe_only():
    def bn_moves(strategy):
        trainer, _ = make_trainer(strategy, epochs=1, probe_epochs=1, freeze_bn=None)
        bn = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
        before = bn.running_mean.clone()
        trainer.fit()
        return not torch.equal(bn.running_mean, before)

    # lp-ft: fine-tuning sees BatchNorm as the probe did (eval mode, pretrained statistics)
    assert not bn_moves("lp-ft")
    assert bn_moves("full")


def test_nan_loss_raises_training_diverged(monkeypatch):
    trainer, _ = make_trainer("full", epochs=1)
    monkeypatch.setattr(trainer.task.loss_fn, "forward", lambda logits, target, smoothing=True: logits.sum() * float("nan"))
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


class _StopAt(Callback):
    """Interrupts the run at a batch of a given epoch, as Ctrl-C would."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, trainer, num_images, loss):
        if len(trainer.state.history) == self.epoch:
            raise KeyboardInterrupt


def test_checkpoint_holds_callback_states_and_resume_restores_them(tmp_path):
    ck = tmp_path / "ck"
    trainer, _ = make_trainer("full", epochs=4, lr=1e-9, warmup_epochs=0, patience=3, monitor="val_accuracy",
                              checkpoint_dir=ck)
    stopper = trainer.callbacks[0]
    trainer.callbacks.append(_StopAt(2))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    saved = torch.load(ck / "last.pt", weights_only=True)["callbacks"]["EarlyStopping"]
    assert saved == stopper.state_dict() and saved["bad_epochs"] >= 1
    resumed, _ = make_trainer("full", epochs=4, lr=1e-9, warmup_epochs=0, patience=3, monitor="val_accuracy",
                              checkpoint_dir=ck)
    resumed._load_checkpoint()
    assert resumed.callbacks[0].state_dict() == saved


def test_grad_scaler_state_is_saved_and_restored(tmp_path):
    """fp16 autocast with a grad scaler (CUDA without bf16) must resume with the scaler's scale and
    growth tracker, or the resumed run differs from the uninterrupted one."""
    dev = DeviceSettings(torch.device("cpu"), torch.float16, False)  # fp16 autocast + scaler on the CPU
    ck = tmp_path / "ck"
    trainer, _ = make_trainer("full", epochs=3, checkpoint_dir=ck, dev=dev, patience=None)
    trainer.callbacks.append(_StopAt(2))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    saved = torch.load(ck / "last.pt", weights_only=True)["scaler"]
    assert saved is not None and "scale" in saved
    saved["scale"] = 1234.0  # distinct from a fresh scaler's 65536
    payload = torch.load(ck / "last.pt", weights_only=True)
    payload["scaler"] = saved
    torch.save(payload, ck / "last.pt")

    seen = []

    class Probe(Callback):
        def on_epoch_start(self, trainer, stage, num_batches):
            seen.append(trainer.scaler.get_scale())

    resumed, _ = make_trainer("full", epochs=3, checkpoint_dir=ck, dev=dev, patience=None)
    resumed.callbacks.append(Probe())
    resumed.fit(resume=True)
    assert seen[0] == 1234.0


class _LossDictTask:
    """A task whose step returns a dict of losses, as torchvision's detection models do."""

    metric_directions = {"val_score": "max"}
    progress_columns = (("val_score", "score"),)

    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(4, 1)
        self.x = torch.randn(16, 4)

    def setup_stage(self, stage, done):
        return self.model

    def steps_per_epoch(self, stage):
        return 2

    def train_batches(self, stage, seed):
        return [self.x[:8], self.x[8:]]

    def training_step(self, stage, batch):
        out = self.model(batch)
        return StepOutput({"box": out.pow(2).mean(), "cls": out.abs().mean()}, len(batch))

    def validate(self, stage):
        return {"val_score": -float(self.model(self.x).detach().pow(2).mean())}

    def end_stage(self, stage):
        pass


def test_a_dict_of_losses_is_summed_and_each_part_logged():
    cfg = TrainConfig(batch_size=8, device="cpu", lr=0.01, warmup_epochs=0).model_copy(update={"monitor": "val_score"})
    trainer = Trainer(_LossDictTask(), [Stage("train", 3, 0.01)], cfg, dev=resolve_device("cpu"))
    state = trainer.fit()
    row = state.history[0]
    assert {"train_loss_box", "train_loss_cls", "val_score"} <= set(row)
    assert row["train_loss"] == pytest.approx(row["train_loss_box"] + row["train_loss_cls"], rel=1e-5)
    assert state.best_value == max(r["val_score"] for r in state.history)


@pytest.mark.gpu
def test_cuda_amp_channels_last_step():
    dev = resolve_device("cuda")
    assert dev.amp_dtype is not None and dev.channels_last
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    cfg = TrainConfig(batch_size=8, device="cuda", epochs=1)
    batches = _batches()
    task = ClassificationTask(model, num_classes=3, make_loader=lambda kind, seed=0: batches, dev=dev, cfg=cfg)
    trainer = Trainer(task, plan_stages(cfg, "full"), cfg, dev=dev)
    state = trainer.fit()
    assert next(trainer.model.parameters()).is_cuda and len(state.history) == 1


class _Snapshots(Callback):
    """The live and the moving-average weights at the end of every epoch."""

    def __init__(self):
        self.live, self.ema = [], []

    def on_epoch_end(self, trainer, row):
        self.live.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        self.ema.append({k: v.clone() for k, v in trainer.ema.module.state_dict().items()})


def test_ema_weights_are_validated_and_kept_as_the_best():
    snaps = _Snapshots()
    trainer, _ = make_trainer("full", epochs=3, ema_decay=0.999, patience=None, callbacks=[snaps])
    state = trainer.fit()
    best = state.best_epoch - 1
    final = trainer.model.state_dict()
    key = "conv1.0.weight"
    assert not torch.equal(snaps.ema[best][key], snaps.live[best][key])  # an average, not the live weights
    kept = snaps.live if state.history[best]["weights"] == "live" else snaps.ema
    assert all(torch.equal(final[k], kept[best][k]) for k in final)
    assert [r["weights"] for r in state.history[:2]] == ["average", "average"]  # the live ones only at the end


def test_a_stages_last_epoch_keeps_the_live_weights_where_they_beat_the_lagging_average():
    cfg = TrainConfig(batch_size=8, device="cpu", lr=0.05, warmup_epochs=0, ema_decay=0.999)
    cfg = cfg.model_copy(update={"monitor": "val_score"})
    task = _LossDictTask()
    trainer = Trainer(task, [Stage("train", 3, 0.05)], cfg, dev=resolve_device("cpu"))
    state = trainer.fit()
    assert [r["weights"] for r in state.history] == ["average", "average", "live"]
    averaged_score = -float(trainer.ema.module(task.x).detach().pow(2).mean())
    assert state.history[-1]["val_score"] > averaged_score
    assert state.best_epoch == 3
    assert task.validate(None)["val_score"] == pytest.approx(state.history[-1]["val_score"])  # the live ones kept


def test_ema_is_off_by_default_and_with_zero():
    for train in ({}, {"ema_decay": 0.0}):
        trainer, _ = make_trainer("full", epochs=1, patience=None, **train)
        trainer.fit()
        assert trainer.ema is None


def test_resume_restores_the_moving_average(tmp_path):
    """A run stopped mid-stage and resumed ends with the weights of the uninterrupted run: the
    average is in the checkpoint (a fresh one from the live weights would differ)."""
    full, _ = make_trainer("full", epochs=3, ema_decay=0.999, patience=None, monitor="val_accuracy")
    full.fit()
    ck = tmp_path / "ck"
    stopped, _ = make_trainer("full", epochs=3, ema_decay=0.999, patience=None, monitor="val_accuracy",
                              checkpoint_dir=ck)
    stopped.callbacks.append(_StopAt(2))
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    assert torch.load(ck / "last.pt", weights_only=True)["ema"] is not None
    resumed, _ = make_trainer("full", epochs=3, ema_decay=0.999, patience=None, monitor="val_accuracy",
                              checkpoint_dir=ck)
    resumed.fit(resume=True)
    assert resumed.state.best_epoch == full.state.best_epoch
    for mine, theirs in ((resumed.ema.module, full.ema.module), (resumed.model, full.model)):
        for k, v in theirs.state_dict().items():
            torch.testing.assert_close(mine.state_dict()[k], v)
