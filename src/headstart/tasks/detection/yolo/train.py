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
``last.pt``/``best.pt`` once, at the last epoch; nothing reads them).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["YoloStage", "TrainOutcome", "train_stages", "ultralytics_test_map"]


@dataclass
class YoloStage:
    name: str  # 'head' or 'full'
    epochs: int
    freeze: int  # layers frozen (0: none)


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


def train_stages(
    model,
    stages: list[YoloStage],
    args: Mapping[str, Any],
    *,
    state: Mapping[str, Any] | None,
    log: Callable[[str], None],
    verbose: bool = True,
) -> TrainOutcome:
    """Train ``model`` (a DetectionModel with the data's class count) through ``stages``; each stage
    starts from the previous stage's best weights. ``args`` are Ultralytics' train arguments."""
    from headstart.tasks.detection.yolo.runtime import load_ultralytics

    load_ultralytics()
    from ultralytics.models.yolo.detect import DetectionTrainer

    class _Trainer(DetectionTrainer):
        def final_eval(self):
            """Ultralytics re-reads its pickled best.pt here to validate it; headstart already holds the best
            weights (copied in memory at the best epoch) and evaluates them itself."""

    if state is not None:
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
    total_epochs = sum(s.epochs for s in stages)
    for stage in stages:
        best: dict[str, Any] = {}
        trainer = _Trainer(
            overrides={
                **args,
                "epochs": stage.epochs,
                "freeze": stage.freeze,
                "name": stage.name,
                "pretrained": False,
                "model": str(outcome.model.yaml.get("yaml_file") or "yolo11n.yaml"),
            }
        )
        trainer.model = outcome.model
        offset = len(outcome.history)
        t_epoch = [time.perf_counter()]

        def on_fit_epoch_end(tr, stage=stage, offset=offset, best=best, t_epoch=t_epoch):
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
                outcome.final_val.clear()
                outcome.final_val.update({"map": row["val_map"], "map50": row["val_map50"]})
            if verbose:
                log(
                    f"epoch {row['epoch']}/{total_epochs} ({stage.name}) train_loss {row['train_loss']:.4f}"
                    f" val_map {row['val_map']:.4f} val_map50 {row['val_map50']:.4f} ({row['seconds']:.0f}s)"
                )

        trainer.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        trainer.train()
        if "state" in best:
            outcome.model.load_state_dict(best["state"])
            outcome.best_epoch, outcome.best_value = best["epoch"], best["value"]
        for p in outcome.model.parameters():  # Ultralytics' freeze leaves requires_grad off
            p.requires_grad_(True)
    outcome.model = outcome.model.float().cpu().eval()
    return outcome


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
