"""Random ground truth and noisy detections for the detection-metric tests and the speed benchmark:
boxes of every COCO size range, some flagged ignore, detections that are jittered copies of the
boxes (some relabelled, some missing) plus random false positives."""

from __future__ import annotations

import numpy as np


def detection_set(seed: int, n_images: int = 30, n_classes: int = 3, *, max_boxes: int = 8,
                  max_false: int = 6, ignore_frac: float = 0.1, jitter: float = 0.08,
                  score_decimals: int | None = None) -> tuple[list[dict], list[dict]]:
    """(ground_truth, detections) in headstart's format; image ids are not 0..n-1 on purpose."""
    rng = np.random.default_rng(seed)
    width, height = 640, 480
    limit = np.array([width, height], dtype=np.float64)
    ground_truth, detections = [], []
    for i in range(n_images):
        image_id = 1000 + 7 * i
        n = int(rng.integers(0, max_boxes + 1))
        xy = rng.uniform(0, limit - 20, size=(n, 2))
        wh = np.exp(rng.uniform(np.log(4), np.log(300), size=(n, 2)))  # 4 to 300 px: small, medium, large
        boxes = np.concatenate([xy, np.minimum(xy + wh, limit)], axis=1)
        labels = rng.integers(0, n_classes, n)
        ignore = rng.random(n) < ignore_frac
        ground_truth.append({"image_id": image_id, "width": width, "height": height, "boxes": boxes,
                             "labels": labels, "ignore": ignore})
        found = rng.random(n) < 0.85
        size = boxes[found, 2:] - boxes[found, :2]
        dt = boxes[found] + rng.normal(0, jitter, size=(int(found.sum()), 4)) * np.tile(size, 2)
        dt[:, 2:] = np.maximum(dt[:, 2:], dt[:, :2] + 1)
        dl = labels[found].copy()
        flip = rng.random(dl.size) < 0.1
        dl[flip] = rng.integers(0, n_classes, int(flip.sum()))
        m = int(rng.integers(0, max_false + 1))
        fxy = rng.uniform(0, limit - 20, size=(m, 2))
        false = np.concatenate([fxy, fxy + np.exp(rng.uniform(np.log(4), np.log(200), size=(m, 2)))], axis=1)
        scores = np.concatenate([rng.uniform(0.2, 1.0, dt.shape[0]), rng.uniform(0.0, 0.8, m)])
        if score_decimals is not None:  # ties between scores
            scores = np.round(scores, score_decimals)
        detections.append({"image_id": image_id, "boxes": np.concatenate([dt, false]), "scores": scores,
                           "labels": np.concatenate([dl, rng.integers(0, n_classes, m)])})
    return ground_truth, detections
