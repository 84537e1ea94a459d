"""The training driver: Ultralytics' ``DetectionTrainer`` run on the YOLO layout in the run folder,
with headstart's model and weights handed in, one call per stage of the strategy.

Ultralytics' trainer owns the loop (its loss, its EMA of the weights, its warmup and schedule,
its early stopping on fitness = val mAP50-95, its checkpoints under ``<run>/yolo/<stage>/``).
headstart hands it a ``DetectionModel`` built from the YAML (its ``setup_model`` keeps a model
it is given), loads the store's or the previous stage's safetensors weights into it, and reads
each epoch back through Ultralytics' ``on_fit_epoch_end`` callback: a history row, a progress
line, and a copy of the EMA weights whenever the epoch is the best so far. So the best weights
reach the run folder without anything unpickling Ultralytics' ``best.pt``: its trainer's final
step, which re-reads that pickle to validate it, is left out (headstart evaluates the weights it
holds), and ``save=False`` keeps it from writing a checkpoint every epoch (it still writes
``last.pt``/``best.pt`` once, at the last epoch; nothing reads them). Its ``save_model`` is
overridden too, so no pickle of Ultralytics is written at all.

headstart's engine callbacks (tune's pruning and deadline, a test's interruption) see each epoch
through :class:`EngineView`, the part of the engine's ``Trainer`` they read (its stages, and a state
with the stage index, the epoch, ``stop_stage`` and the history); a ``stop_stage`` they set stops
Ultralytics' loop after the epoch. With a checkpoint path, every epoch ends with headstart's own
checkpoint (:mod:`~headstart.tasks.detection.yolo.checkpoint`, no pickle of Ultralytics), which
``resume=`` continues from.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["YoloStage", "TrainOutcome", "EngineView", "train_stages", "ultralytics_test_map"]


@dataclass
class YoloStage:
    name: str  # 'head' or 'full'
    epochs: int
    freeze: int  # layers frozen (0: none)


@dataclass
class _StageView:
    name: str
    epochs: int
    on_features: bool = False  # a YOLO stage always trains through the images


@dataclass
class _StateView:
    stage_index: int = 0
    epoch: int = 0  # epochs done in the current stage
    stop_stage: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class EngineView:
    """What headstart's engine callbacks read from the engine's ``Trainer``, for a YOLO run."""

    monitor = "val_map"

    def __init__(self, stages: list[YoloStage], history: list[dict[str, Any]]):
        self.stages = [_StageView(s.name, s.epochs) for s in stages]
        self.state = _StateView(history=history)

    def call(self, callbacks: Sequence[Any], hook: str, *args: Any) -> None:
        for cb in callbacks:
            getattr(cb, hook)(self, *args)


@dataclass
class TrainOutcome:
    model: Any  # the DetectionModel holding the best weights
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    final_val: dict[str, float] = field(default_factory=dict)  # Ultralytics' val mAP of the best epoch


def _intersect(model, state: Mapping[str, Any]) -> tuple[int, int]:
    """Load the tensors of ``state`` whose name and shape match ``model``'s (an imported COCO
    model has 80 classes in its head; the user's have their own count): (loaded, total)."""
    own = model.state_dict()
    match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(match, strict=False)
    return len(match), len(own)


class EpochPermutation:
    """The order of the training images: a permutation per pass, drawn from a generator seeded with
    (seed, stage, pass) (stage codes 200+, apart from the engine's own stages),
    the pass counted by the sampler itself (DataLoader workers may ask for the
    next pass before the epoch starts). It replaces the RandomSampler inside Ultralytics' loader,
    whose shared generator is also drawn from when a loader iterator is created, so that a resumed
    run shuffles as the uninterrupted one did."""

    def __init__(self, n: int, seed: int, stage_index: int, first_pass: int = 0):
        self.n, self.seed, self.stage_index, self.passes = n, seed, stage_index, first_pass

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        from headstart.engine.trainer import epoch_seed

        generator = torch.Generator()
        generator.manual_seed(epoch_seed(self.seed, 200 + self.stage_index, self.passes))
        self.passes += 1
        yield from torch.randperm(self.n, generator=generator).tolist()


def _trainer_class():
    """Ultralytics' ``DetectionTrainer`` with headstart's changes: no pickle read or written, the
    step count of its gradient accumulation tracked, and a resume from headstart's checkpoint."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from headstart.tasks.detection.yolo import checkpoint

    class _Trainer(DetectionTrainer):
        _hs_resume: Mapping[str, Any] | None = None  # headstart's checkpoint to continue from
        _hs_ni = -1  # the batch index of Ultralytics' loop (its local `ni`)
        _hs_last_opt_step = -1  # the batch of the last optimizer step (its local `last_opt_step`)
        _hs_accumulate: int | None = None  # the real accumulation while a resume emulates `last_opt_step`
        _hs_emulated = False  # the emulation's first optimizer step is this batch's
        _hs_stage_index = 0  # which stage of the strategy this trainer runs (seeds the shuffling)

        def final_eval(self):
            """Ultralytics re-reads its pickled best.pt here to validate it; headstart already holds the best
            weights (copied in memory at the best epoch) and evaluates them itself."""

        def save_model(self):
            """No pickled last.pt/best.pt: headstart writes its own checkpoint after each epoch."""
            return False

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            """Ultralytics' loader, shuffled by :class:`EpochPermutation` (one process only: with
            several, its DistributedSampler shuffles by epoch already). Its image-caching progress bar
            (printed to stdout with ``disable=False``, so ``YOLO_VERBOSE=false`` does not reach it) is
            dropped; its warnings go through its logger, which keeps its own stream."""
            import contextlib
            import io

            from torch.utils.data import RandomSampler

            with contextlib.redirect_stdout(io.StringIO()):
                loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
            batches = getattr(getattr(loader, "batch_sampler", None), "sampler", None)  # _RepeatSampler -> BatchSampler
            if mode == "train" and isinstance(getattr(batches, "sampler", None), RandomSampler):
                start = 0 if self._hs_resume is None else self._hs_resume["epoch"] + 1
                batches.sampler = EpochPermutation(
                    len(batches.sampler), int(self.args.seed), self._hs_stage_index, start
                )
            return loader

        def resume_training(self, ckpt):
            if self._hs_resume is not None:
                checkpoint.restore_trainer(self, self._hs_resume)

        def optimizer_step(self):
            super().optimizer_step()
            self._hs_last_opt_step = self._hs_ni

        def preprocess_batch(self, batch):
            """Called once per batch after Ultralytics' warmup set ``accumulate`` and before it decides to
            step: in a resumed epoch, until the first step, ``accumulate`` is set so that its decision
            (``ni - last_opt_step >= accumulate``, its ``last_opt_step`` restarted at -1) is the one the
            uninterrupted run makes with the saved last step; put back at the next batch."""
            if self._hs_accumulate is not None:
                real = self.accumulate
                self._hs_emulated = self._hs_ni - self._hs_last_opt_step >= real
                self.accumulate = real if self._hs_emulated else self._hs_ni + 2
                self._hs_accumulate = real
            return super().preprocess_batch(batch)

    return _Trainer


def train_stages(
    model,
    stages: list[YoloStage],
    args: Mapping[str, Any],
    *,
    state: Mapping[str, Any] | None,
    log: Callable[[str], None],
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    checkpoint_path: Path | None = None,
    resume: Mapping[str, Any] | None = None,
) -> TrainOutcome:
    """Train ``model`` (a DetectionModel with the data's class count) through ``stages``; each stage
    starts from the previous stage's best weights. ``args`` are Ultralytics' train arguments;
    ``callbacks``: headstart engine callbacks; ``checkpoint_path``: where headstart's checkpoint is
    written after every epoch; ``resume``: a checkpoint read back, to continue from."""
    from headstart.tasks.detection.yolo import checkpoint
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    trainer_class = _trainer_class()
    if state is not None and resume is None:
        loaded, total = _intersect(model, state)
        if loaded == 0:
            from headstart.errors import WeightsMismatchError

            raise WeightsMismatchError(
                f"None of the {len(state)} tensors of the weights file match the"
                f" {model.yaml.get('yaml_file')} model; convert the model's own .pt with"
                " `headstart weights import FILE.pt --model NAME --trust-pickle`."
            )
        log(f"weights: {loaded} of {total} tensors loaded (the rest, e.g. a head for other classes, start fresh)")
    outcome = TrainOutcome(model)
    first = 0
    if resume is not None:
        first, resume = _resume_point(outcome, resume, log)
    view = EngineView(stages, outcome.history)
    total_epochs = sum(s.epochs for s in stages)
    for index in range(first, len(stages)):
        stage = stages[index]
        view.state.stage_index, view.state.epoch = index, 0 if resume is None else resume["epoch"] + 1
        view.call(callbacks, "on_stage_start", view.stages[index])
        if view.state.stop_stage:  # a callback ends the fit here (tune's deadline)
            view.state.stop_stage = False
            continue
        best: dict[str, Any] = dict(resume["best"]) if resume is not None else {}
        trainer = trainer_class(
            overrides={
                **args,
                "epochs": stage.epochs,
                "freeze": stage.freeze,
                "name": stage.name,
                "pretrained": False,
                "model": str(outcome.model.yaml.get("yaml_file") or "yolo11n.yaml"),
            }
        )
        trainer._hs_stage_index = index
        # each stage trains a model rebuilt from the YAML with the weights it starts from: what a stage of
        # Ultralytics leaves on the module (its loss object, built on the first batch, and attributes) does
        # not reach the next, so a run resumed at a stage boundary trains the same model
        outcome.model = _rebuilt(outcome.model, resume["model"] if resume is not None else None)
        if resume is not None:
            trainer._hs_resume = resume
        trainer.model = outcome.model
        offset = len(outcome.history) - (0 if resume is None else resume["epoch"] + 1)
        t_epoch = [time.perf_counter()]

        def on_train_epoch_start(tr, resumed=resume, index=index):
            tr._hs_ni = len(tr.train_loader) * tr.epoch - 1
            if resumed is not None and tr.epoch == resumed["epoch"] + 1:
                checkpoint.restore_rng(resumed)
                checkpoint.restore_gradients(tr, resumed)
                tr._hs_last_opt_step = resumed["last_opt_step"]
                tr._hs_accumulate = tr.accumulate  # emulate the saved last step until the first optimizer step

        def on_train_batch_start(tr):
            tr._hs_ni += 1
            if tr._hs_accumulate is not None:  # put back what the last batch's emulation changed
                tr.accumulate = tr._hs_accumulate
                if tr._hs_emulated:  # it stepped: Ultralytics' own last_opt_step is the uninterrupted run's again
                    tr._hs_accumulate = None

        def on_fit_epoch_end(tr, stage=stage, index=index, offset=offset, best=best, t_epoch=t_epoch):
            m = tr.metrics or {}
            losses = tr.label_loss_items(tr.tloss, prefix="train")
            row: dict[str, Any] = {"epoch": offset + tr.epoch + 1, "stage": stage.name}
            row.update(
                {f"train_loss_{k.split('/')[1].removesuffix('_loss')}": round(float(v), 5) for k, v in losses.items()}
            )
            row["train_loss"] = round(sum(float(v) for v in losses.values()), 5)
            row.update(
                {
                    f"val_loss_{k.split('/')[1].removesuffix('_loss')}": round(float(v), 5)
                    for k, v in m.items()
                    if k.startswith("val/")
                }
            )
            row["val_map"] = float(m.get("metrics/mAP50-95(B)", 0.0))
            row["val_map50"] = float(m.get("metrics/mAP50(B)", 0.0))
            row["lr"] = float(next(iter(tr.lr.values()))) if getattr(tr, "lr", None) else None
            row["seconds"] = round(time.perf_counter() - t_epoch[0], 2)
            t_epoch[0] = time.perf_counter()
            outcome.history.append(row)
            if tr.fitness is not None and tr.best_fitness == tr.fitness:
                best["state"] = {k: v.detach().float().cpu().clone() for k, v in tr.ema.ema.state_dict().items()}
                best["epoch"], best["value"] = row["epoch"], row["val_map"]
                best["final_val"] = {"map": row["val_map"], "map50": row["val_map50"]}
            if verbose:
                log(
                    f"epoch {row['epoch']}/{total_epochs} ({stage.name}) train_loss {row['train_loss']:.4f}"
                    f" val_map {row['val_map']:.4f} val_map50 {row['val_map50']:.4f} ({row['seconds']:.0f}s)"
                )
            view.state.epoch = tr.epoch + 1
            view.call(callbacks, "on_epoch_end", row)
            if view.state.stop_stage:
                tr.stop = True
            if checkpoint_path is not None:
                summary = {
                    "best_epoch": outcome.best_epoch,
                    "best_value": outcome.best_value,
                    "final_val": dict(outcome.final_val),
                }
                checkpoint.write(
                    checkpoint_path,
                    checkpoint.trainer_state(
                        tr,
                        stage_index=index,
                        stage_done=bool(tr.stop),
                        history=outcome.history,
                        best=best,
                        outcome=summary,
                    ),
                )

        trainer.add_callback("on_train_epoch_start", on_train_epoch_start)
        trainer.add_callback("on_train_batch_start", on_train_batch_start)
        trainer.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        trainer.train()
        resume = None
        _finish_stage(outcome, best)
        view.call(callbacks, "on_stage_end", view.stages[index])
        view.state.stop_stage = False
    view.call(callbacks, "on_fit_end")
    outcome.model = outcome.model.float().cpu().eval()
    return outcome


def _rebuilt(model, state: Mapping[str, Any] | None):
    """A fresh ``DetectionModel`` from ``model``'s YAML holding ``state`` (``model``'s own when None)."""
    from headstart.tasks.detection.yolo.model import build_yolo_model

    fresh = build_yolo_model(model.yaml, int(model.yaml["nc"]))
    fresh.load_state_dict(model.state_dict() if state is None else state)
    return fresh


def _finish_stage(outcome: TrainOutcome, best: Mapping[str, Any]) -> None:
    """The stage's best weights into the model (the next stage starts from them)."""
    if "state" in best:
        outcome.model.load_state_dict(best["state"])
        outcome.best_epoch, outcome.best_value = best["epoch"], best["value"]
        outcome.final_val.clear()
        outcome.final_val.update(best["final_val"])
    for p in outcome.model.parameters():  # Ultralytics' freeze leaves requires_grad off
        p.requires_grad_(True)


def _resume_point(outcome: TrainOutcome, saved: Mapping[str, Any], log) -> tuple[int, Mapping[str, Any] | None]:
    """The stage to continue and the checkpoint to continue it from (None: start that stage
    afresh, the saved one having ended)."""
    outcome.history.extend(saved["history"])
    done = saved["outcome"]
    outcome.best_epoch, outcome.best_value = done["best_epoch"], done["best_value"]
    outcome.final_val.update(done["final_val"])
    index = saved["stage_index"]
    log(f"resuming after epoch {len(saved['history'])} (stage {index + 1}, its epoch {saved['epoch'] + 1})")
    if not saved["stage_done"]:
        return index, saved
    outcome.model.load_state_dict(saved["model"])
    _finish_stage(outcome, saved["best"])
    return index + 1, None


def ultralytics_test_map(model, args: Mapping[str, Any], split: str) -> dict[str, float]:
    """Ultralytics' own validation of ``model`` on ``split`` of the YOLO layout (its mAP, recorded
    beside headstart's COCO evaluation)."""
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    from ultralytics.models.yolo.detect import DetectionValidator

    keep = ("data", "imgsz", "batch", "device", "workers", "max_det", "plots", "verbose")
    validator = DetectionValidator(
        args={
            **{k: args[k] for k in keep if k in args},
            "split": split,
            "plots": False,
            "save_json": False,
            "verbose": False,
            "project": args.get("project"),
            "name": f"val-{split}",
            "exist_ok": True,
        }
    )
    m = validator(model=copy.deepcopy(model))
    return {"map": float(m.get("metrics/mAP50-95(B)", 0.0)), "map50": float(m.get("metrics/mAP50(B)", 0.0))}
