"""``headstart doctor`` on a detection dataset or a detection run folder: measure (the loaded
index and its problems, the boxes as written, image hashes, the run's detections, curves and
metrics) and hand the numbers to the checks of :mod:`~headstart.diagnose.detection_data`,
:mod:`~headstart.diagnose.detection_labels`, :mod:`~headstart.diagnose.detection_run` and the
duplicate check shared with classification (:func:`~headstart.diagnose.data_checks.check_duplicates`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from headstart.diagnose import data_checks as dc
from headstart.diagnose import detection_data as dd
from headstart.diagnose import detection_labels as dl
from headstart.diagnose import detection_run as dr
from headstart.diagnose.findings import Finding

__all__ = ["is_detection_target", "detection_doctor"]


def is_detection_target(target: Path) -> bool:
    """A run folder whose task is ``detect``, or a folder / file in a detection layout."""
    target = Path(target)
    if target.is_dir() and (target / "config.yaml").is_file():
        from headstart.tasks import task_of_run

        return task_of_run(target).name == "detect"
    if not target.exists():
        return False
    from headstart.data.detection import detect_layout

    return detect_layout(target) is not None


def _rel(path: Path, root: Path) -> str:
    from headstart.data.detection.parsed import relative_name

    return relative_name(path, root)


def _detector_geometry(index, run, image_size: int | None, backbone: str | None):
    """(input size, detector, strides, anchor sizes or None, aspect ratios or None) the run used,
    or, for a dataset, what `headstart fit` would choose on this machine."""
    from headstart.tasks.detection.models import DetectorSpec, default_anchor_sizes, detector_strides
    from headstart.tasks.detection.yolo import is_yolo

    if run is not None and (run / "model" / "model.json").is_file():
        model = json.loads((run / "model" / "model.json").read_text(encoding="utf-8"))
        spec = DetectorSpec.from_dict(model["detector"])
        size = image_size or spec.image_size
        if is_yolo(spec.detector):  # anchor-free heads on P3-P5 (strides 8, 16, 32); no timm backbone
            return size, spec.detector, (8, 16, 32), None, None
        strides = detector_strides(spec.backbone, spec.out_indices, spec.detector)
        if spec.detector == "fcos":
            return size, spec.detector, strides, None, None
        return (
            size,
            spec.detector,
            strides,
            spec.anchor_sizes or default_anchor_sizes(strides, spec.detector),
            spec.aspect_ratios or (0.5, 1.0, 2.0),
        )
    import torch

    from headstart.tasks.detection.anchors import choose_anchors
    from headstart.tasks.detection.choices import auto_detector, auto_image_size

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = image_size or auto_image_size(index.splits["train"], device)
    detector = auto_detector(device)[0]
    strides = detector_strides(backbone or "mobilenetv2_100", detector=detector)
    if detector == "fcos":
        return size, detector, strides, None, None
    anchors = choose_anchors(
        _box_sizes(index.splits["train"], size)[0], strides, default_anchor_sizes(strides, detector)
    )
    return size, detector, strides, anchors.sizes, anchors.aspect_ratios


def _box_sizes(samples, size: int) -> tuple[np.ndarray, list[str]]:
    """(N, 2) widths and heights of the (not ignored) boxes at the input size, and where each is."""
    rows, where = [], []
    for s in samples:
        scale = size / max(s.width, s.height)
        for k, (b, ignored) in enumerate(zip(s.boxes, s.ignore)):
            if not ignored:
                rows.append(((b[2] - b[0]) * scale, (b[3] - b[1]) * scale))
                where.append(f"{s.path.name} box {k + 1}")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2), where


def _raw_boxes(data_path: Path, index=None) -> list[Finding]:
    """The coordinate-format check on the boxes exactly as the annotation files state them."""
    from headstart.data.decode import image_size
    from headstart.data.detection.layout import read_layout

    parsed = read_layout(data_path)
    known = {s.path: (s.width, s.height) for v in index.splits.values() for s in v} if index is not None else {}
    raw, sizes, normalised, where = [], [], [], []
    for im in parsed.images:
        size = known.get(im.path)
        if size is None and im.boxes and im.path.is_file():
            try:
                size = image_size(im.path)
            except Exception:  # an unreadable image: the loader's problems already name it
                size = None
        if size is None:
            continue
        for pb in im.boxes:
            raw.append(pb.box)
            sizes.append(size)
            normalised.append(pb.normalised)
            where.append(f"{pb.source}, {pb.where}" if pb.where else pb.source)
    return dd.check_coordinate_format(
        np.asarray(raw, dtype=np.float64).reshape(-1, 4),
        np.asarray(sizes).reshape(-1, 2),
        np.asarray(normalised, dtype=bool),
        where,
    )


def _sample(index, max_images: int | None, seed: int):
    rows = [(s, split) for split, samples in index.splits.items() for s in samples]
    if max_images is not None and len(rows) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), max_images, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def _duplicates(index, rows) -> list[Finding]:
    scan = dc.scan_images([s.path for s, _ in rows])
    # one 'label' per image: its classes with counts, so two copies annotated differently conflict
    signatures = []
    for s, _ in rows:
        counts: dict[str, int] = {}
        for lab, ign in zip(s.labels, s.ignore):
            if not ign:
                counts[index.classes[lab]] = counts.get(index.classes[lab], 0) + 1
        signatures.append(", ".join(f"{c} x{n}" for c, n in sorted(counts.items())) or "no boxes")
    names = sorted(set(signatures))
    labels = [names.index(sig) for sig in signatures]
    return dc.check_duplicates(scan, [split for _, split in rows], labels, names, index.root)


def _label_findings(run: Path, index, rows, conf: float | None) -> list[Finding]:
    paths = [s.path for s, _ in rows]
    dets = dl.detections_for(run, paths)
    images = []
    for (s, split), (boxes, labels, scores) in zip(rows, dets):
        keep = [i for i, ign in enumerate(s.ignore) if not ign]
        ignored = np.asarray([b for b, ign in zip(s.boxes, s.ignore) if ign], dtype=np.float64).reshape(-1, 4)
        images.append(
            dl.ImageBoxes(
                _rel(s.path, index.root),
                split,
                np.asarray([s.boxes[i] for i in keep]).reshape(-1, 4),
                np.asarray([s.labels[i] for i in keep], dtype=int),
                boxes,
                labels,
                scores,
                ignored,
            )
        )
    confident = max(dl.CONFIDENT, conf or 0.0)
    suspects = dl.find_suspects(images, confident=confident)
    n_boxes = sum(len(im.boxes) for im in images)
    model = f"the run's detector (detections scoring >= {confident:.2f})"
    args = (suspects, n_boxes, len(images), index.classes)
    return (
        dl.check_missing_annotations(*args, model=model)
        + dl.check_wrong_labels(*args, model=model)
        + dl.check_misplaced_boxes(*args, model=model)
    )


def _run_findings(run: Path, index, model_conf: float | None) -> list[Finding]:
    from headstart.run_folder import RunFolder

    folder = RunFolder(run)
    out = dr.check_detection_curves(folder.read_history()) if folder.history_path.is_file() else []
    if not folder.metrics_path.is_file():
        return out
    metrics = json.loads(folder.metrics_path.read_text(encoding="utf-8"))
    out += dr.check_weak_classes(metrics.get("per_class") or {}, index.box_counts("train"))
    split = metrics.get("split", "val")
    preds = run / "predictions.json"
    if model_conf is not None and preds.is_file() and index.splits.get(split):
        from headstart.tasks.detection.matching import match_detections
        from headstart.tasks.detection.task import ground_truth

        by_image: dict[int, dict] = {
            s.image_id: {"image_id": s.image_id, "boxes": [], "scores": [], "labels": []} for s in index.splits[split]
        }
        for r in json.loads(preds.read_text(encoding="utf-8")):
            if r["image_id"] in by_image:
                x, y, w, h = r["bbox"]
                d = by_image[r["image_id"]]
                d["boxes"].append([x, y, x + w, y + h])
                d["scores"].append(r["score"])
                d["labels"].append(r["category_id"] - 1)
        matches = match_detections(ground_truth(index.splits[split]), list(by_image.values()), index.classes)
        scores, tp = matches.counted()
        n_gt = int(matches.n_gt.sum())
        best = metrics.get("conf_threshold")
        if best is not None and n_gt:
            out += dr.check_conf_threshold(
                model_conf,
                best,
                dr.f1_at(scores, tp, n_gt, model_conf),
                dr.f1_at(scores, tp, n_gt, best),
                split=split,
                source="model/model.json's conf",
            )
    return out


def detection_doctor(
    target: Path,
    *,
    level: str = "full",
    image_size: int | None = None,
    max_images: int | None = 5000,
    seed: int = 0,
    backbone: str | None = None,
) -> list[Finding]:
    """The findings for a detection dataset (folder, data.yaml or COCO JSON) or run folder, unsorted."""
    from headstart.data.detection import load_detection_dataset, load_detection_split

    target = Path(target)
    run = target if (target / "config.yaml").is_file() else None
    model_conf = None
    if backbone is not None:
        from headstart.models.zoo import check_model_name

        backbone = check_model_name(backbone)  # close-match suggestions before any image is read
    if run is not None:
        from headstart.config import build_config, load_yaml
        from headstart.errors import RunFolderError

        if not (run / "split.json").is_file():
            raise RunFolderError(
                f"The run folder {str(run)!r} has no split.json, so the doctor cannot tell which boxes it trained"
                " and evaluated on. Run `headstart doctor` on the dataset instead, or re-run `headstart fit`."
            )
        index = load_detection_split(run / "split.json")
        cfg = build_config(config=load_yaml(run / "config.yaml"))
        data_path = Path(cfg.data.path)
        image_size = image_size or cfg.model.image_size
        backbone = backbone or (cfg.model.name if cfg.model.name != "auto" else None)
        model_json = run / "model" / "model.json"
        if model_json.is_file():
            model_conf = json.loads(model_json.read_text(encoding="utf-8")).get("conf")
    else:
        from headstart.errors import DataError

        try:
            index = load_detection_dataset(target, seed=seed)
        except DataError as exc:
            # a dataset none of whose boxes survive the checks (YOLO labels in pixels, say): the loader
            # cannot give an index, but the boxes as written may still say why
            from headstart.data.detection.layout import read_layout

            parsed = read_layout(target)
            n_boxes = sum(len(im.boxes) for im in parsed.images)
            found = dd.check_annotation_problems(parsed.problems, n_boxes, root=Path(parsed.root)) + _raw_boxes(target)
            if not found:
                raise
            return found + [
                Finding(
                    "dataset-unusable",
                    "high",
                    f"The dataset cannot be loaded: {exc}",
                    "Fix what the other findings name, then run the doctor again.",
                    {},
                )
            ]
        data_path = target
    train = index.splits.get("train", [])
    n_boxes = sum(len(s.boxes) for v in index.splits.values() for s in v)
    out = dd.check_annotation_problems(index.problems, n_boxes, root=Path(index.root))
    if data_path.exists():
        out += _raw_boxes(data_path, index)
    out += dd.check_box_balance(index.box_counts("train"))
    size, detector, strides, sizes, ratios = _detector_geometry(index, run, image_size, backbone)
    wh, where = _box_sizes(train, size)
    best_iou = dd.anchor_best_iou(wh, sizes, ratios) if sizes is not None else None
    out += dd.check_small_objects(wh, where, input_size=size, strides=strides, detector=detector, best_iou=best_iou)
    if run is not None:
        out += _run_findings(run, index, model_conf)
    if level == "quick":
        return out
    rows = _sample(index, max_images, seed)
    out += _duplicates(index, rows)
    if level == "full":
        if run is not None and (run / "model" / "model.safetensors").is_file():
            out += _label_findings(run, index, rows, model_conf)
        elif run is None:
            out.append(
                Finding(
                    "model-checks-skipped",
                    "info",
                    "Likely missing annotations, wrong box labels and misplaced boxes are found from a trained detector's"
                    " confident boxes; a dataset alone has none.",
                    f"Train one (`headstart fit {target}`), then run `headstart doctor RUN_FOLDER`.",
                    {},
                )
            )
    return out
