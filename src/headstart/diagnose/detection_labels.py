"""Label checks for detection from a trained detector's boxes: likely missing annotations (a
confident detection where no box is annotated), likely wrong class labels (a confident detection of
another class on an annotated box) and likely misplaced boxes (a confident detection of the same
class overlapping the box, but not at IoU 0.5).

:class:`ImageBoxes` holds one image's annotated boxes and the model's detections; the ``check_*``
functions take a list of them and return findings naming each image and box, so they are tested on
their own; :func:`detections_for` runs a run folder's detector over the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = [
    "ImageBoxes",
    "Suspect",
    "find_suspects",
    "check_missing_annotations",
    "check_wrong_labels",
    "check_misplaced_boxes",
    "detections_for",
    "CONFIDENT",
    "MATCH_IOU",
]

CONFIDENT = 0.5
"""Detections scoring at or above this (or the run's F1-best threshold, if higher) count as confident."""
MATCH_IOU = 0.5
"""A detection and an annotated box at or above this IoU are the same object (COCO's AP50 rule)."""
MISPLACED_IOU = 0.1
OWN_CLASS_RATIO = 0.7
"""A box is a wrong-label suspect only if the model scores its annotated class there (any score, at
IoU >= MATCH_IOU) below this fraction of the other class's score. Measured in
benchmarks/doctor_detection.py (a short FCOS fit, 10% of the val labels swapped): 0.5 names 1 clean
box of 650 and finds 27% of the swaps, 0.7 names 6 and finds 48%, no such test 21 and 60%."""
_SHOWN = 6


@dataclass
class ImageBoxes:
    """One image: ``boxes`` (N, 4) xyxy pixels and ``labels`` (N,) annotated (ignored boxes left
    out); ``det_boxes`` (M, 4), ``det_labels`` (M,), ``det_scores`` (M,) the model's detections."""

    path: str
    split: str
    boxes: np.ndarray
    labels: np.ndarray
    det_boxes: np.ndarray
    det_labels: np.ndarray
    det_scores: np.ndarray
    ignored: np.ndarray | None = None
    """(K, 4) boxes marked ignore (VOC difficult, COCO crowd): a detection on one is not a missing box."""


@dataclass(frozen=True)
class Suspect:
    kind: str  # 'missing', 'wrong-label' or 'misplaced'
    path: str
    split: str
    box: tuple[float, float, float, float]  # the annotated box (wrong-label, misplaced) or the detection (missing)
    label: int  # the annotated class (the detected class for 'missing')
    detected: int  # the detected class
    score: float
    iou: float  # IoU of the detection with the annotated box (missing: with the closest box)
    detection: tuple[float, float, float, float]

    def describe(self, classes: Sequence[str]) -> str:
        box = "[" + ", ".join(f"{v:.0f}" for v in self.box) + "]"
        if self.kind == "missing":
            return f"{self.path} ({self.split}): {classes[self.detected]!r} at {box}, score {self.score:.2f}"
        if self.kind == "wrong-label":
            return (
                f"{self.path} ({self.split}): box {box} labelled {classes[self.label]!r}, detected as"
                f" {classes[self.detected]!r} ({self.score:.2f})"
            )
        det = "[" + ", ".join(f"{v:.0f}" for v in self.detection) + "]"
        return (
            f"{self.path} ({self.split}): {classes[self.label]!r} box {box}, detected at {det}"
            f" (IoU {self.iou:.2f}, score {self.score:.2f})"
        )

    def to_dict(self, classes: Sequence[str]) -> dict:
        return {
            "kind": self.kind,
            "path": self.path,
            "split": self.split,
            "box": [round(v, 1) for v in self.box],
            "label": classes[self.label],
            "detected": classes[self.detected],
            "score": round(self.score, 4),
            "iou": round(self.iou, 3),
            "detection": [round(v, 1) for v in self.detection],
        }


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch
    from torchvision.ops import box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(
        torch.as_tensor(a, dtype=torch.float64).reshape(-1, 4), torch.as_tensor(b, dtype=torch.float64).reshape(-1, 4)
    ).numpy()


def find_suspects(
    images: Sequence[ImageBoxes], *, confident: float = CONFIDENT, match_iou: float = MATCH_IOU
) -> list[Suspect]:
    """Every suspect box, most confident first. Per image, over the confident detections (after the
    detector's own NMS): an annotated box that no confident detection of its class covers at
    ``match_iou`` is a wrong label when one of another class does (and the model's best score for the
    box's own class there is below :data:`OWN_CLASS_RATIO` of it), and misplaced when one of its
    class overlaps it between :data:`MISPLACED_IOU` and ``match_iou`` (and covers no other box); a
    confident detection that covers no annotated box at ``match_iou`` and explains none of those is
    a missing annotation."""
    out: list[Suspect] = []
    for im in images:
        boxes = np.asarray(im.boxes, dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(im.labels, dtype=int).reshape(-1)
        keep = np.asarray(im.det_scores, dtype=np.float64) >= confident
        dets = np.asarray(im.det_boxes, dtype=np.float64).reshape(-1, 4)[keep]
        dlab = np.asarray(im.det_labels, dtype=int).reshape(-1)[keep]
        dsc = np.asarray(im.det_scores, dtype=np.float64).reshape(-1)[keep]
        iou = _iou(dets, boxes)  # (M, N)
        # every detection (confident or not) of each box's own class, for the wrong-label test
        all_boxes = np.asarray(im.det_boxes, dtype=np.float64).reshape(-1, 4)
        all_labels = np.asarray(im.det_labels, dtype=int).reshape(-1)
        all_scores = np.asarray(im.det_scores, dtype=np.float64).reshape(-1)
        all_iou = _iou(all_boxes, boxes)
        used: set[int] = set()
        for i in range(len(boxes)):
            col = iou[:, i] if len(dets) else np.zeros(0)
            same = dlab == labels[i]
            if (same & (col >= match_iou)).any():
                continue
            other = (~same) & (col >= match_iou)
            if other.any():
                j = int(np.flatnonzero(other)[np.argmax(dsc[other])])
                used.add(j)
                own = (all_labels == labels[i]) & (all_iou[:, i] >= match_iou) if len(all_boxes) else np.zeros(0, bool)
                if own.any() and all_scores[own].max() >= OWN_CLASS_RATIO * dsc[j]:
                    continue  # the model is torn between the two classes: no evidence the label is wrong
                out.append(
                    Suspect(
                        "wrong-label",
                        im.path,
                        im.split,
                        tuple(boxes[i]),
                        int(labels[i]),
                        int(dlab[j]),
                        float(dsc[j]),
                        float(col[j]),
                        tuple(dets[j]),
                    )
                )
                continue
            near = np.flatnonzero(same & (col >= MISPLACED_IOU) & (col < match_iou))
            for j in near[np.argsort(-dsc[near])]:
                # a detection that is another box's match (or already explains one) is not this box's object
                if j in used or (iou[j] >= match_iou).any():
                    continue
                used.add(int(j))
                out.append(
                    Suspect(
                        "misplaced",
                        im.path,
                        im.split,
                        tuple(boxes[i]),
                        int(labels[i]),
                        int(dlab[j]),
                        float(dsc[j]),
                        float(col[j]),
                        tuple(dets[j]),
                    )
                )
                break
        for j in range(len(dets)):
            best = float(iou[j].max()) if len(boxes) else 0.0
            if im.ignored is not None and len(im.ignored):
                best = max(best, float(_iou(dets[j : j + 1], np.asarray(im.ignored, dtype=np.float64)).max()))
            if j not in used and best < match_iou:
                out.append(
                    Suspect(
                        "missing",
                        im.path,
                        im.split,
                        tuple(dets[j]),
                        int(dlab[j]),
                        int(dlab[j]),
                        float(dsc[j]),
                        best,
                        tuple(dets[j]),
                    )
                )
    out.sort(key=lambda s: -s.score)
    return out


def _finding(
    check: str,
    suspects: list[Suspect],
    n_boxes: int,
    n_images: int,
    classes: Sequence[str],
    what: str,
    fix: str,
    model: str,
) -> list[Finding]:
    if not suspects:
        return []
    share = len(suspects) / max(n_boxes, 1)
    # a detector trained for minutes has false alarms of its own on ~2% of clean boxes (measured in
    # benchmarks/doctor_detection.py), so a share below 3% is worth a look, not an alarm
    severity = "medium" if len(suspects) >= 3 and share >= 0.03 else "low"
    shown = "; ".join(s.describe(classes) for s in suspects[:_SHOWN])
    return [
        Finding(
            check,
            severity,
            f"{len(suspects)} {what} ({share:.1%} of the {n_boxes} annotated boxes on the {n_images} images checked with"
            f" {model}), most confident first: {shown}.",
            fix,
            {"count": len(suspects), "share": share, "boxes": [s.to_dict(classes) for s in suspects]},
        )
    ]


def check_missing_annotations(
    suspects: Sequence[Suspect],
    n_boxes: int,
    n_images: int,
    classes: Sequence[str],
    *,
    model: str = "the run's detector",
) -> list[Finding]:
    """Confident detections with no annotated box under them (``kind == 'missing'``)."""
    return _finding(
        "likely-missing-annotations",
        [s for s in suspects if s.kind == "missing"],
        n_boxes,
        n_images,
        classes,
        "confident detection(s) where no box is annotated (likely missing boxes)",
        "Look at these images and annotate the objects that are there (the full list: `headstart doctor RUN --format"
        " json`); unannotated objects teach the detector to call them background.",
        model,
    )


def check_wrong_labels(
    suspects: Sequence[Suspect],
    n_boxes: int,
    n_images: int,
    classes: Sequence[str],
    *,
    model: str = "the run's detector",
) -> list[Finding]:
    """Annotated boxes that the model confidently detects as another class (``kind == 'wrong-label'``)."""
    return _finding(
        "likely-wrong-box-labels",
        [s for s in suspects if s.kind == "wrong-label"],
        n_boxes,
        n_images,
        classes,
        "annotated box(es) confidently detected as another class (likely wrong labels)",
        "Check the class of each listed box in the annotation files and correct it; if both classes are right, they"
        " look alike to the model: add boxes of both.",
        model,
    )


def check_misplaced_boxes(
    suspects: Sequence[Suspect],
    n_boxes: int,
    n_images: int,
    classes: Sequence[str],
    *,
    model: str = "the run's detector",
) -> list[Finding]:
    """Annotated boxes whose object the model finds elsewhere nearby (``kind == 'misplaced'``)."""
    return _finding(
        "likely-misplaced-boxes",
        [s for s in suspects if s.kind == "misplaced"],
        n_boxes,
        n_images,
        classes,
        "annotated box(es) whose class is detected nearby but at IoU < 0.5 (likely shifted or loose boxes)",
        "Redraw these boxes tightly around their objects; shifted boxes cost AP at IoU 0.5 and above.",
        model,
    )


def detections_for(
    run_dir: str | Path, paths: Sequence[Path], *, conf: float = 0.05, batch_size: int = 8
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes xyxy in the image's pixels, class indices, scores) of the run's detector for each path,
    through the run's own predictor (the pixels it was evaluated on)."""
    from headstart.tasks.detection.predict import BoxPredictor

    predictor = BoxPredictor.from_run(run_dir)
    index = {name: i for i, name in enumerate(predictor.classes)}
    preds = predictor.predict([Path(p) for p in paths], conf=conf, batch_size=batch_size)
    by_path = {p.path: p for p in preds}
    out = []
    for path in paths:
        p = by_path.get(str(path))
        if p is None or p.error:
            out.append((np.zeros((0, 4)), np.zeros(0, dtype=int), np.zeros(0)))
            continue
        out.append(
            (
                np.asarray(p.boxes, dtype=np.float64).reshape(-1, 4),
                np.asarray([index[lab] for lab in p.labels], dtype=int),
                np.asarray(p.scores, dtype=np.float64),
            )
        )
    return out
