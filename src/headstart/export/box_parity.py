"""The check an exported detector passes before its file is kept, against the PyTorch model.

1. **Boxes, matched by IoU** (not by index: NMS may order near-equal scores differently). On real
   images (the run's evaluated split, or ``--images``) and on random images of two aspect ratios,
   each image's boxes from the export are matched to PyTorch's one-to-one: a pair needs the same
   label and IoU >= 0.5 (a box clipped flat against the border has no area, and pairs with a box
   within the coordinate tolerance), and among those pairs scipy's ``linear_sum_assignment`` picks
   the assignment of smallest total coordinate difference. Matched boxes must agree
   within :data:`BOX_TOLERANCE` pixels per coordinate and :data:`SCORE_TOLERANCE` in score. A box
   without a partner is allowed only where a tiny score difference can decide whether it exists:
   within :data:`NEAR_SCORE` of the detector's score floor, or of the lowest score of an output cut
   at the detector's cap on detections.
2. **mAP**: the export's boxes on the whole evaluated split, scored with the run's own COCO
   evaluation (:func:`headstart.tasks.detection.metrics.coco_metrics`), must equal the run's
   ``metrics.json`` mAP within :data:`MAP_TOLERANCE`. The run evaluated batches of images (padded
   together by torchvision), the export runs one image at a time, hence a tolerance.

When the run's dataset is no longer at its recorded place, only the random images and ``--images``
are checked, and the summary says that the mAP was not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from headstart.export.parity import ParityError

__all__ = [
    "BoxParityReport",
    "check_detector",
    "compare_boxes",
    "verify_or_remove_boxes",
    "BOX_TOLERANCE",
    "SCORE_TOLERANCE",
    "MAP_TOLERANCE",
    "NEAR_SCORE",
]

BOX_TOLERANCE = 0.05
"""Largest allowed difference of a matched box's coordinate, in pixels of the model's input."""
SCORE_TOLERANCE = 1e-4
"""Largest allowed difference of a matched box's score."""
MAP_TOLERANCE = 0.005
"""Largest allowed difference between the export's mAP and the run's, on the run's evaluated split."""
NEAR_SCORE = 1e-3
"""An unmatched box must score within this of the score floor (or of the cut at the cap)."""
MATCH_IOU = 0.5


@dataclass(frozen=True)
class BoxParityReport:
    n_real: int
    n_random: int
    n_reference_boxes: int
    n_matched: int
    max_box_diff: float
    max_score_diff: float
    unmatched: tuple[str, ...]  # one line per unmatched box that is allowed (near the floor)
    problems: tuple[str, ...]  # why the check fails; empty when it passes
    tolerance: float
    box_tolerance: float
    map_tolerance: float
    map_run: float | None = None
    map_export: float | None = None
    map_split: str = ""
    real_source: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def max_abs_diff(self) -> float:  # the classification report's name, for callers that print it
        return self.max_score_diff

    def summary(self) -> str:
        text = (
            f"parity with PyTorch: {self.n_matched}/{self.n_reference_boxes} boxes matched by IoU on {self.n_real}"
            f" real image(s){f' ({self.real_source})' if self.real_source else ''} and {self.n_random} random"
            f" one(s); max |dbox| {self.max_box_diff:.2e} px (tolerance {self.box_tolerance:g}), max |dscore|"
            f" {self.max_score_diff:.2e} (tolerance {self.tolerance:.0e}); {len(self.unmatched)} unmatched near"
            " the score floor"
        )
        if self.map_export is not None:
            text += (
                f"\nmAP on the {self.map_split} split: export {self.map_export:.4f}, run {self.map_run:.4f}"
                f" (|diff| {abs(self.map_export - self.map_run):.4f}, tolerance {self.map_tolerance:g})"
            )
        for note in self.notes:
            text += f"\n{note}"
        return text


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch
    from torchvision.ops import box_iou

    iou = box_iou(torch.from_numpy(a.astype(np.float64)), torch.from_numpy(b.astype(np.float64))).numpy()
    return np.nan_to_num(iou, nan=0.0)  # two zero-area boxes: 0/0


def compare_boxes(
    ref, got, *, score_floor: float, cap: int, near: float = NEAR_SCORE, box_tolerance: float = BOX_TOLERANCE
):
    """Match one image's boxes ``(boxes, scores, labels)``: ``(pairs, unmatched)`` where ``pairs``
    are ``(box diff, score diff)`` of matched boxes and ``unmatched`` ``(side, score, allowed)``."""
    from scipy.optimize import linear_sum_assignment

    (rb, rs, rl), (gb, gs, gl) = ref, got
    pairs: list[tuple[float, float]] = []
    matched_r, matched_g = set(), set()

    def near_floor(scores: np.ndarray) -> np.ndarray:
        """Scores where a tiny difference decides whether a box exists: near the detector's floor,
        or near the last score of an output cut at the cap."""
        near_cut = scores <= float(scores[-1]) + near if len(scores) >= cap else np.zeros(len(scores), bool)
        return (scores <= score_floor + near) | near_cut

    r_near, g_near = near_floor(rs), near_floor(gs)
    if len(rb) and len(gb):
        # A pair is a candidate when the labels agree and IoU >= 0.5 (boxes clipped flat against
        # the image border have no area, IoU 0 even with themselves: those pair within the
        # coordinate tolerance). Among candidates, the assignment of the smallest total coordinate
        # difference: with many overlapping boxes of near-equal scores, the largest-IoU partner is
        # not always the same box.
        diff = np.abs(rb[:, None, :].astype(np.float64) - gb[None, :, :]).max(-1)
        valid = ((_iou(rb, gb) >= MATCH_IOU) | (diff <= box_tolerance)) & (rl[:, None] == gl[None, :])
        rows, cols = linear_sum_assignment(np.where(valid, diff, 1e9))
        for r, c in zip(rows, cols):
            # two different boxes that both sit at the floor are two unmatched boxes, not a pair
            if valid[r, c] and not (diff[r, c] > box_tolerance and r_near[r] and g_near[c]):
                matched_r.add(int(r))
                matched_g.add(int(c))
                pairs.append((float(diff[r, c]), float(abs(float(rs[r]) - gs[c]))))
    unmatched = []
    for side, scores, matched, allowed in (("pytorch", rs, matched_r, r_near), ("export", gs, matched_g, g_near)):
        for i, score in enumerate(scores.tolist()):
            if i not in matched:
                unmatched.append((side, float(score), bool(allowed[i])))
    return pairs, unmatched


def _real_images(run_path: Path, images, max_real: int):
    """``(paths, source, eval samples or None, split name)``."""
    from headstart.data.inputs import expand_inputs
    from headstart.errors import HeadstartError

    samples, split = None, ""
    try:
        from headstart.data.detection import load_detection_split

        split = json.loads((run_path / "metrics.json").read_text(encoding="utf-8")).get("split", "test")
        samples = list(load_detection_split(run_path / "split.json").splits[split])
    except (HeadstartError, OSError, ValueError, KeyError):
        samples = None
    if images:
        return expand_inputs(images)[:max_real], "given images", samples, split
    if samples:
        return [s.path for s in samples[:max_real]], f"the {split} split", samples, split
    return [], "none found: the run's dataset is not at its recorded place", None, split


def _map_of(backend, samples, classes, pre) -> float:
    from headstart.tasks.detection.metrics import coco_metrics
    from headstart.tasks.detection.predict import load_box_image
    from headstart.tasks.detection.task import ground_truth

    dets = []
    for sample in samples:
        array, scale, _ = load_box_image(sample.path, pre)
        boxes, scores, labels = backend.detect([array])[0]
        dets.append({"image_id": sample.image_id, "boxes": boxes / scale, "scores": scores, "labels": labels})
    return float(coco_metrics(ground_truth(samples), dets, classes)["map"])


def check_detector(
    graph,
    backend,
    run_path: str | Path,
    record: dict,
    images: Sequence | None = None,
    *,
    score_tolerance: float = SCORE_TOLERANCE,
    box_tolerance: float = BOX_TOLERANCE,
    map_tolerance: float = MAP_TOLERANCE,
    max_real: int = 16,
    seed: int = 0,
) -> BoxParityReport:
    """Check ``backend`` (the export, ``detect(arrays)``) against ``graph`` (the PyTorch
    :class:`~headstart.tasks.detection.export.DetectorGraph`); see the module docstring."""
    import torch

    from headstart.errors import DataError
    from headstart.tasks.detection.export import detector_limits
    from headstart.tasks.detection.predict import load_box_image

    run_path = Path(run_path)
    pre, first = record["preprocessing"], record["detector"].first_label
    floor, cap = detector_limits(graph.model)
    paths, source, samples, split = _real_images(run_path, images, max_real)
    real = []
    for path in paths:
        try:
            real.append(load_box_image(path, pre)[0])
        except (DataError, OSError):
            continue
    size = pre.input_size
    rng = np.random.default_rng(seed)
    random = [
        rng.integers(0, 256, (3, size, max(1, size * 2 // 3)), dtype=np.uint8),
        rng.integers(0, 256, (3, max(1, size // 2), size), dtype=np.uint8),
    ]
    pairs, unmatched, n_ref = [], [], 0
    for array in real + random:
        with torch.inference_mode():
            boxes, scores, labels = graph(torch.from_numpy(array)[None])
        ref = (boxes.numpy(), scores.numpy(), labels.numpy() - first)
        got = backend.detect([array])[0]
        n_ref += len(ref[1])
        p, u = compare_boxes(ref, got, score_floor=floor, cap=cap, box_tolerance=box_tolerance)
        pairs += p
        unmatched += u
    box_diff = max((b for b, _ in pairs), default=0.0)
    score_diff = max((s for _, s in pairs), default=0.0)
    problems = []
    if not np.isfinite(box_diff) or box_diff > box_tolerance:
        problems.append(f"a matched box moved by {box_diff:.3g} px (tolerance {box_tolerance:g})")
    if not np.isfinite(score_diff) or score_diff > score_tolerance:
        problems.append(f"a matched box's score differs by {score_diff:.3g} (tolerance {score_tolerance:g})")
    bad = [u for u in unmatched if not u[2]]
    if bad:
        side, score, _ = max(bad, key=lambda u: u[1])
        problems.append(
            f"{len(bad)} box(es) have no partner on the other side although they score well above the"
            f" floor {floor:g} (e.g. one from {side} with score {score:.3f})"
        )
    map_run = map_export = None
    notes = []
    run_map = _run_map(run_path)
    if samples and run_map is not None:
        map_export = _map_of(backend, samples, record["classes"], pre)
        map_run = run_map
        if not abs(map_export - map_run) <= map_tolerance:
            problems.append(
                f"the export's mAP on the {split} split is {map_export:.4f}, the run's {map_run:.4f}"
                f" (tolerance {map_tolerance:g})"
            )
    else:
        notes.append(
            "mAP not checked: the run's evaluated images are not at their recorded place (or the run has"
            " no metrics.json); boxes were checked on the images above."
        )
    return BoxParityReport(
        n_real=len(real),
        n_random=len(random),
        n_reference_boxes=n_ref,
        n_matched=len(pairs),
        max_box_diff=box_diff,
        max_score_diff=score_diff,
        unmatched=tuple(f"{side} box, score {score:.4f}" for side, score, ok in unmatched if ok),
        problems=tuple(problems),
        tolerance=score_tolerance,
        box_tolerance=box_tolerance,
        map_tolerance=map_tolerance,
        map_run=map_run,
        map_export=map_export,
        map_split=split,
        real_source=source,
        notes=tuple(notes),
    )


def _run_map(run_path: Path) -> float | None:
    try:
        value = json.loads((run_path / "metrics.json").read_text(encoding="utf-8")).get("map")
    except (OSError, ValueError):
        return None
    return float(value) if value is not None else None


def verify_or_remove_boxes(report: BoxParityReport, path: Path, target: Path) -> None:
    """Raise :class:`ParityError` (after deleting ``path``, which would have become ``target``) when
    the check failed, saying why."""
    if report.ok:
        return
    Path(path).unlink(missing_ok=True)
    raise ParityError(
        f"The ONNX export failed its check against PyTorch and was removed ({target.name}): "
        + "; ".join(report.problems)
        + f".\n{report.summary()}\nThis is a bug in the exporter for this detector;"
        " please report it with the detector and backbone names. Serve or predict with the run folder directly"
        " (headstart serve RUN)."
    )
