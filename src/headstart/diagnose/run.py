"""``headstart.doctor(target)``: run the checks that apply to a dataset folder (or CSV) or to a
run folder, and return the findings, most severe first."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from headstart.diagnose import data_checks as dc
from headstart.diagnose import run_checks as rc
from headstart.diagnose.findings import Finding, sort_findings
from headstart.errors import ConfigError, DatasetNotFoundError

__all__ = ["doctor", "LEVELS"]

LEVELS = ("full", "images", "quick")
"""``quick``: counts, config and training curves only (no image is read; what ``fit`` runs for its
report); ``images``: plus checks that read every image (duplicates, resolution, colour); ``full``:
plus pretrained-feature checks (label issues, confusable classes, separability, domain)."""


def _load_preprocessing(preprocessing: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(preprocessing, Mapping):
        return dict(preprocessing), "the given preprocessing"
    path = Path(preprocessing)
    if not path.is_file():
        raise ConfigError(f"The preprocessing file {str(path)!r} does not exist. Pass a YAML or JSON file with mean, std,"
                          " size and interpolation, or a dict.")
    from headstart.config import load_yaml  # YAML is a superset of JSON

    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"The preprocessing file {str(path)!r} must hold a mapping (mean, std, size, interpolation). Got {type(data).__name__}.")
    return dict(data), str(path)


def _expected_preprocessing(model_name: str, image_size: int | None):
    from headstart.data.transforms import Preprocessing
    from headstart.models.resolve import pretrained_cfg

    cfg = pretrained_cfg(model_name)
    if cfg:
        return Preprocessing.from_model(cfg, image_size)
    import timm

    return Preprocessing.from_model(timm.create_model(model_name, pretrained=False, num_classes=2), image_size)


# tasks whose run folders doctor knows how to examine (see _run_findings; detection: detection_doctor.py)
RUN_CHECKED_TASKS = ("classify", "detect")


def _open_target(target: Path, seed: int):
    """(index, run or None, config or None)."""
    from headstart.config import DataConfig, build_config, load_yaml
    from headstart.data.index import load_dataset
    from headstart.data.split import load_split
    from headstart.run_folder import RunFolder

    if target.is_dir() and (target / "config.yaml").is_file():
        from headstart.tasks import UnsupportedForTask, task_of_run

        spec = task_of_run(target)
        if spec.name not in RUN_CHECKED_TASKS:
            raise UnsupportedForTask(f"`headstart doctor` has no run checks for {spec.title} runs (task {spec.name!r})"
                                     f" yet; it checks {', '.join(RUN_CHECKED_TASKS)} runs.")
        run = RunFolder(target)
        cfg = build_config(config=load_yaml(run.config_path))
        if run.split_path.is_file():
            index = load_split(run.split_path)
        else:
            index = load_dataset(cfg.data, seed=cfg.train.seed)
        return index, run, cfg
    if not target.exists():
        raise DatasetNotFoundError(f"{str(target)!r} does not exist. Pass a folder of images (or a CSV of path,label)"
                                   " for data checks, or a run folder (with config.yaml) for run checks.")
    from headstart.tasks import require_classification_data

    require_classification_data(target, "`headstart doctor`")
    return load_dataset(DataConfig(path=target), seed=seed), None, None


def doctor(
    target: str | Path,
    *,
    level: str = "full",
    model: str | None = "auto",
    image_size: int | None = None,
    preprocessing: str | Path | Mapping[str, Any] | None = None,
    max_images: int | None = 5000,
    seed: int = 0,
) -> list[Finding]:
    """Examine a dataset (folder or CSV) or a finished run folder; return findings, most severe first.

    ``model``: backbone for the feature checks (``auto``: mobilenetv2_100 when its weights are in the
    store, else the run's model). ``image_size``: the input size to judge the data against (default:
    the run's, else the model's pretrained size). ``preprocessing``: a dict or YAML/JSON file of the
    user's own preprocessing to check against the model's pretrained_cfg. ``max_images``: image and
    feature checks look at a random sample of at most this many images.
    """
    from headstart._validation import check_choice

    level = check_choice("level", level, LEVELS)
    target = Path(target)
    from headstart.diagnose.detection_doctor import detection_doctor, is_detection_target

    if is_detection_target(target):
        findings = detection_doctor(target, level=level, image_size=image_size, max_images=max_images, seed=seed,
                                    backbone=model if model not in (None, "auto") else None)
        if preprocessing is not None:
            used, source = _load_preprocessing(preprocessing)
            arch = model if model not in (None, "auto") else "mobilenetv2_100"
            findings += rc.check_preprocessing(used, _expected_preprocessing(arch, None).to_dict(), source=source,
                                               model=arch)
        return sort_findings(findings)
    index, run, cfg = _open_target(target, seed)
    findings: list[Finding] = []
    run_model = cfg.model.name if cfg is not None else None
    judge_model = run_model or (model if model not in (None, "auto") else "mobilenetv2_100")
    if cfg is not None and image_size is None:
        image_size = cfg.model.image_size
    expected = _expected_preprocessing(judge_model, image_size)

    findings += dc.check_class_balance(index.class_counts("train"))
    if preprocessing is not None:
        used, source = _load_preprocessing(preprocessing)
        findings += rc.check_preprocessing(used, _expected_preprocessing(judge_model, None).to_dict(), source=source, model=judge_model)
    if run is not None:
        findings += _run_findings(run, cfg, index, judge_model)
    if level in ("images", "full"):
        findings += _image_findings(index, expected.input_size, level, model, run_model, image_size, max_images, seed)
    return sort_findings(findings)


def _samples(index, max_images: int | None, seed: int):
    rows = [(s, split) for split, samples in index.splits.items() for s in samples]
    if max_images is not None and len(rows) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_images, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def _image_findings(index, input_size, level, model, run_model, image_size, max_images, seed) -> list[Finding]:
    from headstart.diagnose import features as feat
    from headstart.diagnose.label_checks import check_label_issues, find_label_issues

    rows = _samples(index, max_images, seed)
    paths = [s.path for s, _ in rows]
    labels = np.array([s.label for s, _ in rows])
    splits = [split for _, split in rows]
    scan = dc.scan_images(paths)
    out = dc.check_resolution(scan.sizes, input_size) + dc.check_grayscale(scan.gray) + dc.check_channel_stats(scan.means, scan.stds)
    if level == "full":
        name = feat.pick_feature_model(model, run_model)
        if name is None:
            out.append(Finding(
                "feature-checks-skipped", "info",
                "No pretrained weights were found offline for a feature backbone, so label issues, confusable classes,"
                " class separability and domain distance were not checked.",
                "`headstart weights fetch mobilenetv2_100` (or import a file with `headstart weights import`), or pass"
                " --model NAME for a model whose weights you have.", {},
            ))
        else:
            features = feat.extract(paths, name, image_size)
            probe = feat.cross_val_probe(features, labels, len(index.classes), seed=seed)
            if probe is not None:
                # flag, re-fit the probe without the flagged images, flag again (reprobe_without says why)
                pruned = feat.reprobe_without(probe, features, find_label_issues(labels, probe.pred_probs), seed=seed)
                found = check_label_issues(labels, pruned.pred_probs, paths, index.classes, index.root,
                                           probe_error=pruned.kept_error)
                confusable = [tuple(p["classes"]) for f in found if f.check == "confusable-classes" for p in f.data["pairs"]]
                out += found
                out += dc.check_separability(probe.pred_probs, labels, index.classes, skip=confusable)
                out += dc.check_domain(probe.balanced_accuracy, len(index.classes))
                out.append(Finding(
                    "linear-probe", "info",
                    f"A {probe.folds}-fold cross-validated linear probe on {name} features reaches"
                    f" {probe.balanced_accuracy:.1%} balanced accuracy on {len(labels)} images.",
                    "None needed: a reference for what fine-tuning should beat.",
                    {"model": name, "balanced_accuracy": probe.balanced_accuracy},
                ))
    out += dc.check_duplicates(scan, splits, labels, index.classes, index.root)
    return out


def _run_findings(run, cfg, index, arch: str) -> list[Finding]:
    from headstart.tasks.classification.strategies import default_lr, resolve_freeze_bn

    out: list[Finding] = []
    pre_file = run.model_dir / "preprocessing.json"
    if pre_file.is_file():
        import json

        used = json.loads(pre_file.read_text(encoding="utf-8"))
        out += rc.check_preprocessing(used, _expected_preprocessing(arch, None).to_dict(),
                                      source=f"the run's {pre_file.relative_to(run.path)}", model=arch)
    history = run.read_history()
    t = cfg.train
    strategy = t.strategy if t.strategy != "auto" else "lp-ft"
    default = default_lr(strategy, t.batch_size, t.optimizer)
    freeze_bn = resolve_freeze_bn(t.freeze_bn, strategy)
    # config.yaml holds the resolved values that ran (fit writes every auto decided)
    out += rc.check_lr_too_high(history, t.lr, default, strategy=strategy, freeze_bn=freeze_bn)
    out += rc.check_lr_too_low(history, t.lr, default)
    out += rc.check_fit_quality(history, len(index.classes))
    out += rc.check_batchnorm(t.batch_size, strategy, freeze_bn, _count_batchnorm(arch))
    best = (run.read_json("metrics.json") if run.metrics_path.is_file() else {}).get("best_epoch")
    best_stage = next((r.get("stage") for r in history if r.get("epoch") == best), None)
    # the saved weights are the best epoch's: when that epoch was in the probe stage the backbone is
    # rightly unchanged, so only a best epoch in a fine-tuning stage says something about freezing
    if best_stage in (None, "finetune"):
        out += _frozen(run, arch, strategy)
    return out


def _count_batchnorm(arch: str) -> int:
    import timm
    import torch

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=2)
    except Exception:  # an architecture timm no longer knows: nothing to inspect
        return 0
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _frozen(run, arch: str, strategy: str) -> list[Finding]:
    import json

    weights = run.model_dir / "model.safetensors"
    prov = run.model_dir / "provenance.json"
    if not (weights.is_file() and prov.is_file()):
        return []
    src = (json.loads(prov.read_text(encoding="utf-8")).get("weights") or {}).get("path")
    if not src or not Path(src).is_file():
        return []
    from safetensors.torch import load_file
    from timm.models import load_state_dict

    from headstart.models.resolve import pretrained_cfg

    head = (pretrained_cfg(arch) or {}).get("classifier", "fc")
    heads = tuple(head) if isinstance(head, (list, tuple)) else (head,)
    return rc.check_frozen_layers(load_file(str(weights)), load_state_dict(src), strategy, heads)
