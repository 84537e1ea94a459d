"""Comparing two detectors' outputs in tests as the export's parity check does: boxes matched by
IoU and label, not by index (onnxruntime and PyTorch may order boxes of near-equal scores
differently, and a box at the score floor or the cap may exist on one side only)."""

from __future__ import annotations

import numpy as np


def _arrays(boxes: list[dict]):
    return (
        np.array([b["box"] for b in boxes], dtype=np.float64).reshape(-1, 4),
        np.array([b["score"] for b in boxes], dtype=np.float64),
        np.array([b["label"] for b in boxes]),
    )


def assert_same_boxes(got: list[dict], want: list[dict], *, conf: float = 0.0, box_tol: float = 0.05,
                      score_tol: float = 1e-4) -> None:
    """``got`` and ``want``: one image's boxes as ``{"box": [x1, y1, x2, y2], "score", "label"}``,
    ``want`` in descending score order. Every pair within the tolerances; a box without a partner
    only near the score floor, the ``conf`` cut both sides applied, or the cap."""
    from headstart.export.box_parity import compare_boxes

    pairs, unmatched = compare_boxes(_arrays(want), _arrays(got), score_floor=conf, cap=max(len(want), 1),
                                     box_tolerance=box_tol)
    assert all(d <= box_tol and ds <= score_tol for d, ds in pairs), max(pairs, key=lambda p: p[0] + p[1])
    assert all(allowed for *_, allowed in unmatched), unmatched


def boxes_of(prediction) -> list[dict]:
    """A BoxPrediction's boxes as dicts."""
    return [{"box": list(map(float, b)), "score": float(s), "label": lab}
            for b, s, lab in zip(prediction.boxes, prediction.scores, prediction.labels)]
