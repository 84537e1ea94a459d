"""Configuration and run checks: preprocessing against the model's pretrained_cfg, the learning
rate, over- and underfitting (from history.csv), BatchNorm with tiny batches, and layers that were
meant to train but did not change."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = [
    "normalise_preprocessing", "check_preprocessing", "check_lr_too_high", "check_lr_too_low",
    "check_fit_quality", "check_batchnorm", "check_frozen_layers",
]


def normalise_preprocessing(user: Mapping[str, Any]) -> dict[str, Any]:
    """Read a user's preprocessing description (headstart's preprocessing.json, or the usual
    spellings: ``size``/``image_size``/``input_size``, ``mean``/``std``, ``rescale``/``scale``
    (a 1/255 factor without normalisation), ``interpolation``/``resample``)."""
    out: dict[str, Any] = {}
    for key in ("input_size", "image_size", "size", "img_size"):
        if key in user and user[key] is not None:
            value = user[key]
            out["input_size"] = int(max(value[-2:]) if isinstance(value, (list, tuple)) else value)
            break
    for key in ("interpolation", "resample"):
        if key in user:
            out["interpolation"] = str(user[key]).lower()
    if "mean" in user:
        out["mean"] = [float(v) for v in np.broadcast_to(np.asarray(user["mean"], dtype=float), (3,))]
    if "std" in user:
        out["std"] = [float(v) for v in np.broadcast_to(np.asarray(user["std"], dtype=float), (3,))]
    rescale = user.get("rescale", user.get("scale"))
    if rescale is not None and "mean" not in out:
        # Keras-style 'rescale=1/255' with no normalisation: [0, 1] inputs, mean 0, std 1
        out["mean"], out["std"] = [0.0] * 3, [1.0] * 3
    return out


def check_preprocessing(used: Mapping[str, Any], expected: Mapping[str, Any], *, source: str = "the preprocessing",
                        model: str = "the model") -> list[Finding]:
    """Compare ``used`` (see :func:`normalise_preprocessing`) with the model's pretrained_cfg
    (``expected``: input_size, interpolation, mean, std)."""
    used = normalise_preprocessing(used)
    out = []
    exp_mean, exp_std = np.asarray(expected["mean"]), np.asarray(expected["std"])
    if "mean" in used and "std" in used:
        mean, std = np.asarray(used["mean"]), np.asarray(used["std"])
        if np.allclose(mean, 0) and np.allclose(std, 1) and not (np.allclose(exp_mean, 0) and np.allclose(exp_std, 1)):
            out.append(Finding(
                "preprocessing-rescale-only", "high",
                f"{source} only rescales pixels to [0, 1] (mean 0, std 1), but {model} was pretrained on inputs"
                f" normalised with mean {list(map(float, exp_mean))} and std {list(map(float, exp_std))}: every input is"
                " shifted and scaled away from what the backbone expects.",
                f"Normalise with mean={list(map(float, exp_mean))} std={list(map(float, exp_std))} (timm:"
                " `timm.data.resolve_data_config(model=model)`); `headstart fit` and `headstart predict` do this.",
                {"used": used, "expected": dict(expected)},
            ))
        elif np.abs(mean - exp_mean).max() > 0.02 or np.abs(std - exp_std).max() > 0.02:
            out.append(Finding(
                "preprocessing-normalisation", "high",
                f"{source} normalises with mean {mean.tolist()} std {std.tolist()}, but {model} expects mean"
                f" {list(map(float, exp_mean))} std {list(map(float, exp_std))}.",
                f"Use the model's values: mean={list(map(float, exp_mean))} std={list(map(float, exp_std))}.",
                {"used": used, "expected": dict(expected)},
            ))
    size = used.get("input_size")
    if size and expected.get("input_size") and abs(size / expected["input_size"] - 1) > 0.5:
        out.append(Finding(
            "preprocessing-size", "low",
            f"{source} uses {size}px inputs; {model} was pretrained at {expected['input_size']}px. Objects appear at"
            " another scale than in pretraining.",
            f"Try `--image-size {expected['input_size']}` if your images are that large, or a model pretrained near {size}px.",
            {"used": size, "expected": expected["input_size"]},
        ))
    interp = used.get("interpolation")
    if interp and expected.get("interpolation") and interp != expected["interpolation"]:
        out.append(Finding(
            "preprocessing-interpolation", "low",
            f"{source} resizes with {interp!r} interpolation; {model} was pretrained with {expected['interpolation']!r}.",
            f"Resize with {expected['interpolation']!r} (PIL Image.Resampling.{str(expected['interpolation']).upper()}).",
            {"used": interp, "expected": expected["interpolation"]},
        ))
    return out


def _stage(history: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [r for r in history if r.get("stage") == name]


def _handover_jump(probe, ft, spike: float) -> tuple[float, float] | None:
    """(last probe loss, first fine-tuning loss) when the train loss jumps exactly at lp-ft's
    hand-over from the probe to fine-tuning."""
    if not probe or not ft:
        return None
    last_probe, first_ft = float(probe[-1]["train_loss"]), float(ft[0]["train_loss"])
    return (last_probe, first_ft) if first_ft > spike * last_probe else None


def _lower_lr(lr: float | None, default: float | None) -> float | None:
    """A concrete LR below the one that ran: the strategy's default when the run was well above it,
    otherwise a third of what ran (never the value that ran)."""
    if lr is None:
        return default / 3 if default else None
    if default is not None and lr > 3 * default:
        return default
    return lr / 3


def check_lr_too_high(history: Sequence[Mapping[str, Any]], lr: float | None = None, default: float | None = None,
                      *, strategy: str | None = None, freeze_bn: bool = False, spike: float = 1.5) -> list[Finding]:
    """Loss spikes while fine-tuning, or fine-tuning ending worse than the linear probe it started from.

    ``lr`` is the LR that ran (the run's config.yaml), ``default`` the strategy's default for that
    batch size. The advice never points at what already ran: it proposes an LR below ``lr``. A jump
    only at lp-ft's hand-over (the first fine-tuning epoch, with no spike after it) is not evidence
    of a too-high LR when the LR is not above the default: the probed head meets augmented crops and
    BatchNorm in train mode for the first time; that is reported as ``lp-ft-handover`` with a remedy
    for the hand-over instead."""
    ft = _stage(history, "finetune")
    probe = _stage(history, "probe")
    evidence = []
    jumps = []
    if len(ft) >= 2:
        losses = np.array([float(r["train_loss"]) for r in ft])
        jumps = [(ft[i]["epoch"], losses[i] / losses[i - 1]) for i in range(1, len(losses)) if losses[i] > spike * losses[i - 1]]
        if jumps:
            evidence.append("train loss jumps " + ", ".join(f"x{r:.1f} at epoch {e}" for e, r in jumps[:3]))
    handover = _handover_jump(probe, ft, spike)
    lr_high = lr is not None and default is not None and lr > 3 * default
    if handover and not jumps and not lr_high:
        return [_handover_finding(handover, ft, lr, freeze_bn)]
    if handover and not jumps:
        evidence.append(f"train loss jumps from {handover[0]:.3f} (end of the probe) to {handover[1]:.3f} when"
                        " fine-tuning starts")
    if probe and ft:
        best_probe = max(float(r["val_accuracy"]) for r in probe)
        best_ft = max(float(r["val_accuracy"]) for r in ft)
        if best_probe > best_ft + 0.02:
            evidence.append(f"the linear probe reached {best_probe:.1%} val accuracy, fine-tuning only {best_ft:.1%}:"
                            " fine-tuning destroyed pretrained features")
    if not evidence:
        return []
    if lr_high:
        evidence.append(f"lr {lr:.2e} is {lr / default:.0f}x the default {default:.2e} for this strategy and batch size")
    target = _lower_lr(lr, default)
    ran = f" (the run used {lr:.1e})" if lr is not None else ""
    alternatives = " add warmup (train.warmup_epochs=2) or layer-wise decay (train.layer_decay=0.7)"
    if strategy == "full":
        alternatives += ", or probe first (`--strategy lp-ft`)"
    elif strategy == "lp-ft" and not lr_high:
        alternatives += ", or keep the probe (`--strategy linear-probe`)"
    fix = (f"Lower it: `--lr {target:.1e}`{ran};" + alternatives + "." if target else
           "Lower train.lr by 3-10x;" + alternatives + ".")
    return [Finding("lr-too-high", "high",
                    "The learning rate looks too high for fine-tuning: " + "; ".join(evidence) + " (history.csv).",
                    fix, {"evidence": evidence, "lr": lr, "default_lr": default, "proposed_lr": target})]


def _handover_finding(handover: tuple[float, float], ft, lr: float | None, freeze_bn: bool) -> Finding:
    last_probe, first_ft = handover
    recovered = min(float(r["train_loss"]) for r in ft) <= last_probe * 1.2
    remedies = ["Fine-tune everything from the start (`--strategy full`)"]
    if not freeze_bn:
        remedies.append("keep BatchNorm statistics as the probe saw them (train.freeze_bn=true)")
    if lr is not None:
        remedies.append(f"or start more gently at a lower LR (`--lr {lr / 3:.1e}`; the run used {lr:.1e})")
    return Finding(
        "lp-ft-handover", "low" if recovered else "medium",
        f"The train loss jumps from {last_probe:.3f} at the end of the linear probe to {first_ft:.3f} in the first"
        " fine-tuning epoch and then " + ("recovers" if recovered else "stays higher than the probe's") +
        ": the probed head was fit on un-augmented features with BatchNorm in eval mode, and fine-tuning shows it"
        " augmented crops" + ("" if freeze_bn else " with BatchNorm in train mode") + " (history.csv). With no later"
        " spike and the LR not above its default, this is the hand-over, not the learning rate.",
        "; ".join(remedies) + ".",
        {"last_probe_loss": last_probe, "first_finetune_loss": first_ft, "recovered": recovered, "lr": lr},
    )


def check_lr_too_low(history: Sequence[Mapping[str, Any]], lr: float | None = None, default: float | None = None,
                     *, min_drop: float = 0.03) -> list[Finding]:
    """Fine-tuning that makes no progress: the train loss barely moves over three or more epochs."""
    ft = _stage(history, "finetune") or _stage(history, "probe")
    if len(ft) < 3:
        return []
    first, last = float(ft[0]["train_loss"]), min(float(r["train_loss"]) for r in ft[1:])
    drop = (first - last) / max(first, 1e-12)
    if drop >= min_drop:
        return []
    evidence = f"the train loss went from {first:.3f} to at best {last:.3f} ({drop:.1%}) over {len(ft)} epochs of the {ft[0]['stage']} stage"
    if lr is not None and default is not None and lr < default / 3:
        evidence += f"; lr {lr:.2e} is {default / lr:.0f}x below the default {default:.2e}"
        fix = f"Raise the learning rate to the default (`--lr {default:.1e}`; the run used {lr:.1e}) or train longer (`--epochs`)."
    elif lr is not None:
        fix = f"Raise the learning rate (`--lr {lr * 3:.1e}`; the run used {lr:.1e}) or train longer (`--epochs`)."
    else:
        fix = "Raise train.lr by 3-10x, or train longer (`--epochs`)."
    return [Finding(
        "lr-too-low", "medium",
        f"No training progress: {evidence} (history.csv).",
        fix, {"drop": drop, "lr": lr, "default_lr": default},
    )]


def check_fit_quality(history: Sequence[Mapping[str, Any]], num_classes: int, *, gap: float = 0.15,
                      low_skill: float = 0.5) -> list[Finding]:
    """Overfitting (a train/val accuracy gap that grows, best epoch early) and underfitting (both low)."""
    if len(history) < 3:
        return []
    train = np.array([float(r["train_accuracy"]) for r in history])
    val = np.array([float(r["val_accuracy"]) for r in history])
    val_loss = np.array([float(r["val_loss"]) for r in history])
    best = int(val_loss.argmin())
    gaps = train - val
    out = []
    if gaps[-1] >= gap and gaps[-1] > gaps[: max(1, len(gaps) // 3)].min() + 0.05:
        early = best < len(history) * 0.5
        out.append(Finding(
            "overfitting", "high" if early and gaps[-1] >= 2 * gap else "medium",
            f"Train accuracy {train[-1]:.1%} vs val {val[-1]:.1%} at the last epoch (gap {gaps[-1]:.1%}, from"
            f" {gaps[0]:.1%} at epoch 1); the val loss was lowest at epoch {best + 1} of {len(history)} (history.csv).",
            "More augmentation (`--augment strong`), fewer trainable layers (`--strategy lp-ft` or linear-probe),"
            " more weight decay (train.weight_decay=0.1), fewer epochs; early stopping keeps the best epoch.",
            {"train_accuracy": float(train[-1]), "val_accuracy": float(val[-1]), "best_epoch": best + 1},
        ))
    chance = 1 / num_classes
    skill = lambda a: (a - chance) / (1 - chance)  # noqa: E731
    if skill(train.max()) < low_skill and skill(val.max()) < low_skill:
        out.append(Finding(
            "underfitting", "medium",
            f"Both train ({train.max():.1%}) and val ({val.max():.1%}) accuracy stay low (chance {chance:.1%})"
            f" after {len(history)} epochs (history.csv).",
            "Train longer (`--epochs 30`), unfreeze the backbone (`--strategy lp-ft` or full), use a larger model"
            " or input size, and less augmentation (`--augment light`).",
            {"train_accuracy": float(train.max()), "val_accuracy": float(val.max())},
        ))
    return out


def check_batchnorm(batch_size: int, strategy: str, freeze_bn: bool, num_batchnorm: int, *, small: int = 8) -> list[Finding]:
    """BatchNorm layers updated from tiny batches have noisy statistics."""
    if num_batchnorm == 0 or freeze_bn or strategy == "linear-probe" or batch_size >= small:
        return []
    return [Finding(
        "batchnorm-tiny-batches", "medium",
        f"The model has {num_batchnorm} BatchNorm layers in train mode and batch_size={batch_size}: their running"
        " statistics are estimated from very few images and drift from the pretrained ones.",
        "Freeze BatchNorm (train.freeze_bn=true) or use a larger batch (`--batch-size 32`).",
        {"batch_size": batch_size, "num_batchnorm": num_batchnorm},
    )]


def check_frozen_layers(trained: Mapping[str, Any], pretrained: Mapping[str, Any], strategy: str,
                        head_keys: Sequence[str] = (), *, unchanged: float = 0.5) -> list[Finding]:
    """With a strategy that trains the backbone, backbone tensors still equal to the pretrained ones."""
    if strategy not in ("full", "lp-ft"):
        return []
    import torch

    keys = [k for k in trained if k in pretrained and not any(k.startswith(h) for h in head_keys)
            and torch.is_floating_point(trained[k]) and "running_" not in k and trained[k].shape == pretrained[k].shape]
    if not keys:
        return []
    same = [k for k in keys if torch.equal(trained[k], pretrained[k])]
    frac = len(same) / len(keys)
    if frac < unchanged:
        return []
    return [Finding(
        "frozen-layers", "high",
        f"strategy={strategy!r} should train the backbone, yet {len(same)} of {len(keys)} backbone tensors"
        f" ({frac:.0%}) equal the pretrained weights after training, e.g. {same[0]!r}.",
        "Check that nothing freezes them (requires_grad, a custom callback), that train.epochs > 0 and the lr is"
        " not tiny; re-run `headstart fit` with `--strategy full`.",
        {"unchanged": same, "fraction": frac},
    )]
