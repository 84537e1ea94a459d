"""Likely mislabeled images, and pairs of classes the features cannot tell apart.

Confident learning (cleanlab) on out-of-fold probabilities of a linear probe on pretrained features
(:func:`headstart.diagnose.features.cross_val_probe`, re-fitted without the first flags by
:func:`~headstart.diagnose.features.reprobe_without`) flags images. The flags are then split in two:

* **confusable classes**: a pair of classes whose flags go both ways, make up a large share of the
  two classes and far more than their share of the flags (:func:`confusable_pairs`). That is the
  probe failing to separate the classes, not a list of wrong labels: one finding about the pair;
* **likely wrong labels**: the other flags on which the probe gives the given class at most
  :data:`CONFIDENT` probability. The severity follows the share of images listed and the probe's
  own error, with the precision measured there on planted-noise benchmarks
  (benchmarks/doctor_precision.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from headstart.diagnose.findings import Finding

__all__ = [
    "find_label_issues", "confusable_pairs", "check_label_issues", "CONFIDENT", "PAIR_SHARE", "PAIR_CONCENTRATION",
    "PAIR_SYMMETRY", "MEDIUM_SHARE", "HIGH_SHARE", "HIGH_MAX_PROBE_ERROR",
]

CONFIDENT = 0.05
"""An image is listed as a likely wrong label only when the probe gives its given class at most this
probability (design datasets: raises precision by 0.05-0.1 for a loss of 0.01-0.03 recall)."""
PAIR_SHARE = 0.08
"""A pair of classes is confusable when its flags (both directions) are at least this share of the
two classes' images; planted uniform label noise gave at most 0.06 on the design datasets (15 %
flipped), a confusable pair (glyphs I/J, E/F, C/G) about 0.1, a class split in two at random 0.3+."""
PAIR_CONCENTRATION = 3.0
"""... and its share of all flags is at least this many times the share of a pair under uniform
noise (1 / number of pairs). Uniform noise gave at most 2.8. Two-class data never pass this test:
with one pair, confusion and label noise cannot be told apart this way."""
PAIR_SYMMETRY = 0.25
"""... and the smaller direction has at least this share of the larger one (confusion goes both ways)."""
PAIR_MIN_FLAGS = 10
"""... and it has at least this many flags: on 120-image sets (benchmarks/doctor_recall.py's clean
digits) 5-8 flags between two classes made a 'pair' in 2 of 3 seeds; real pairs had 30 and more."""
MEDIUM_SHARE = 0.04
"""Share of images listed from which the finding is medium: clean design datasets list 0.4-2.8 %."""
HIGH_SHARE = 0.12
"""Share of images listed from which the finding is high: on the design datasets with 15 % of the
labels flipped, 15-17 % are listed with precision 0.81-0.94; with 5 % flipped, 5-7 % with 0.61-0.88."""
HIGH_MAX_PROBE_ERROR = 0.1
"""... and only when the re-fitted probe errs on at most this share of the images it kept
(:attr:`~headstart.diagnose.features.Probe.kept_error`): 0.03-0.06 on the design datasets, where
the high band had precision 0.81-0.94; 0.12-0.20 on benchmarks/doctor_recall.py's 500 tinted
digits, where 12-21 % listed had precision 0.57-0.77. A weaker probe makes more false flags."""
EXPECTED_PRECISION = {"high": "0.8-0.95", "medium": "0.6-0.9"}
"""What share of the listed images were wrong labels on the planted-noise benchmarks (design datasets
at 15 % / 5 % flipped; BENCHMARKS.md, "Doctor precision")."""


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Indices of likely label errors, most likely first (cleanlab's ``find_label_issues``)."""
    from cleanlab.filter import find_label_issues as _find

    labels = np.asarray(labels)
    present = np.unique(labels)
    # cleanlab wants every column to be a class with examples: drop empty ones, relabel densely
    remap = {c: i for i, c in enumerate(present)}
    probs = pred_probs[:, present]
    probs = probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
    dense = np.array([remap[c] for c in labels])
    return np.asarray(_find(dense, probs, return_indices_ranked_by="self_confidence"), dtype=int)


def confusable_pairs(labels: np.ndarray, pred_probs: np.ndarray, issues: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Pairs of classes ``(a, b, flags a->b, flags b->a)`` (a < b) that the probe confuses broadly:
    see :data:`PAIR_SHARE`, :data:`PAIR_CONCENTRATION`, :data:`PAIR_SYMMETRY`. Largest first."""
    labels = np.asarray(labels)
    issues = np.asarray(issues, dtype=int)
    k = pred_probs.shape[1]
    n = np.bincount(labels, minlength=k)
    n_pairs = int((n > 0).sum()) * (int((n > 0).sum()) - 1) // 2
    if len(issues) == 0 or n_pairs < 2:
        return []
    suggested = pred_probs[issues].argmax(1)
    flows = Counter(zip(labels[issues].tolist(), suggested.tolist()))
    out = []
    for a in range(k):
        for b in range(a + 1, k):
            ab, ba = flows[(a, b)], flows[(b, a)]
            both = ab + ba
            if (both >= PAIR_MIN_FLAGS and both / (n[a] + n[b]) >= PAIR_SHARE
                    and both / len(issues) * n_pairs >= PAIR_CONCENTRATION and min(ab, ba) >= PAIR_SYMMETRY * max(ab, ba)):
                out.append((a, b, ab, ba))
    return sorted(out, key=lambda p: -(p[2] + p[3]))


def check_label_issues(
    labels: np.ndarray, pred_probs: np.ndarray, paths: Sequence[Path], classes: Sequence[str],
    root: Path | None = None, *, probe_error: float | None = None, show: int = 10,
) -> list[Finding]:
    """A ``confusable-classes`` finding per set of broadly confused pairs, and a ``label-issues``
    finding listing the images whose given label the probe contradicts confidently, elsewhere.
    ``probe_error``: the probe's error on the images it kept (:attr:`Probe.kept_error`); above
    :data:`HIGH_MAX_PROBE_ERROR` the finding is at most medium."""
    labels = np.asarray(labels)
    issues = find_label_issues(labels, pred_probs)
    if len(issues) == 0:
        return []
    suggested = pred_probs.argmax(1)
    pairs = confusable_pairs(labels, pred_probs, issues)
    in_pair = {frozenset((a, b)) for a, b, _, _ in pairs}
    out = []
    if pairs:
        n = np.bincount(labels, minlength=pred_probs.shape[1])
        text = "; ".join(f"{classes[a]!r} and {classes[b]!r}: {ab + ba} of their {n[a] + n[b]} images"
                         f" ({ab} {classes[a]!r} look like {classes[b]!r}, {ba} the other way)" for a, b, ab, ba in pairs[:8])
        out.append(Finding(
            "confusable-classes", "medium",
            f"Classes the pretrained features hardly tell apart (a linear probe confuses them both ways, far more than"
            f" other pairs): {text}. This looks like inherent confusion between the classes, not wrong labels.",
            "Give the model more to separate them: more images of these classes, a larger input size (`--image-size`),"
            " fine-tuning the backbone (`--strategy lp-ft` or `full`) rather than a linear probe; merge the classes if"
            " people cannot tell them apart either.",
            {"pairs": [{"classes": [classes[a], classes[b]], "flagged": [ab, ba], "images": int(n[a] + n[b])}
                       for a, b, ab, ba in pairs]},
        ))
    rest = [int(i) for i in issues if frozenset((int(labels[i]), int(suggested[i]))) not in in_pair]
    listed = [i for i in rest if pred_probs[i, labels[i]] <= CONFIDENT]
    if not listed:
        return out
    frac = len(listed) / len(labels)
    severity = "high" if frac >= HIGH_SHARE else ("medium" if frac >= MEDIUM_SHARE else "low")
    weak = probe_error is not None and probe_error > HIGH_MAX_PROBE_ERROR
    if severity == "high" and weak:
        severity = "medium"
    rel = (lambda p: str(Path(p).relative_to(root)) if root and Path(p).is_relative_to(root) else str(p))
    rows = [
        {"path": rel(paths[i]), "given": classes[labels[i]], "suggested": classes[int(suggested[i])],
         "confidence": float(pred_probs[i].max())}
        for i in listed
    ]
    shown = "; ".join(f"{r['path']}: given {r['given']!r}, suggested {r['suggested']!r}" for r in rows[:show])
    if severity == "low":
        trust = (f"So few are listed that most may be the probe's own mistakes: clean datasets list up to {MEDIUM_SHARE:.0%}"
                 " of their images.")
    elif weak:
        trust = (f"The probe errs on {probe_error:.0%} of the other images, so a good part of this list may be its own"
                 " mistakes (on planted-noise benchmarks with such a probe, 0.4-0.8 of the listed images were mislabeled).")
    else:
        trust = (f"On planted-noise benchmarks, {EXPECTED_PRECISION[severity]} of the images listed at this rate were"
                 " indeed mislabeled.")
    return out + [Finding(
        "label-issues", severity,
        f"{len(listed)} of {len(labels)} images ({frac:.1%}) look mislabeled: a linear probe on pretrained features,"
        f" trained without them, gives their given class at most {CONFIDENT:.0%} probability. {trust} E.g. {shown}.",
        "Review these images (full list in `headstart doctor DATA --format json`) and fix or remove wrong labels;"
        " until then label smoothing helps (train.label_smoothing=0.1, the default).",
        {"images": rows, "fraction": frac, "less_confident": len(rest) - len(listed), "probe_error": probe_error,
         "expected_precision": EXPECTED_PRECISION.get(severity)},
    )]
