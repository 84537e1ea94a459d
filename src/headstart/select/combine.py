"""How the estimators' scores become one ranking.

Scores live on different scales (LogME is a log-evidence per sample, the probes are accuracies,
H-score is unbounded), so each is standardised across the candidates being ranked (z-score; a
score that does not vary contributes 0) and the combined score is the weighted mean of those
z-scores. The default weights are the ones that ranked best in ``benchmarks/rank_quality.py``
(weighted Kendall tau against fine-tuned test accuracy on real datasets); see BENCHMARKS.md. The
benchmark also reports every single estimator and timm's ImageNet top-1 (the prior to beat).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

__all__ = ["DEFAULT_WEIGHTS", "zscores", "combine_scores", "relative_accuracy"]

# Chosen from benchmarks/results/rank_quality*.json (see the module docstring and BENCHMARKS.md).
# The least noisy ground truth (session 3: 9 candidates at 32-128 px, 5 fine-tuning seeds,
# 1200-1400 test images; rank_quality_sizes32-128_5seeds.json) gives digits / patches:
#   LogME + ridge probe + k-NN 0.812 / 0.960 (top pick = the best candidate on both),
#   ridge probe alone 0.838 / 0.956, LogME + ridge 0.848 / 0.907, LogME alone 0.641 / 0.825.
# Choosing the mix on one dataset and scoring it on the other gives 0.84 mean tau.
# The ridge probe alone is not the default: it saturates when every candidate probes at 94-98 %
# and was the worst score on session 2's patches run (-0.61). This mix was second best both on
# the clean run and over all six (dataset, run) pairs measured (0.52, against LogME alone's 0.50).
# ImageNet top-1 (the prior) was below every estimator on every run.
DEFAULT_WEIGHTS: dict[str, float] = {"logme": 1.0, "linear_probe": 1.0, "knn": 1.0}


def zscores(values: Sequence[float]) -> list[float]:
    """Standardised values (population std); NaN stays NaN, a constant column gives zeros."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return [0.0 if v is not None and math.isfinite(v) else math.nan for v in values]
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
    if std < 1e-12 * max(1.0, abs(mean)):
        return [0.0 if v is not None and math.isfinite(v) else math.nan for v in values]
    return [(v - mean) / std if v is not None and math.isfinite(v) else math.nan for v in values]


def combine_scores(scores: Sequence[Mapping[str, float]], weights: Mapping[str, float] | None = None) -> list[float]:
    """Weighted mean of per-estimator z-scores for each candidate (estimators missing from
    ``scores`` or NaN for a candidate are left out of that candidate's mean)."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    names = [n for n in weights if any(n in s for s in scores)]
    if not names:
        raise ValueError(f"none of the weighted estimators {sorted(weights)} was computed")
    columns = {n: zscores([s.get(n, math.nan) for s in scores]) for n in names}
    out = []
    for i in range(len(scores)):
        total = wsum = 0.0
        for n in names:
            z = columns[n][i]
            if math.isfinite(z):
                total += weights[n] * z
                wsum += weights[n]
        out.append(total / wsum if wsum > 0 else math.nan)
    return out


def relative_accuracy(probe_accuracies: Sequence[float]) -> list[float]:
    """Each candidate's cross-validated linear-probe accuracy divided by the best one's: a proxy
    for fine-tuned accuracy relative to the best candidate (1.0 = the best). In
    ``benchmarks/rank_quality.py`` it was 5-6 points off on average and optimistic for the weak
    candidates (a 32 px input predicted at 0.88 of the best fine-tuned to 0.64): fine-tuning
    widens the gaps that frozen features show."""
    finite = [a for a in probe_accuracies if a is not None and math.isfinite(a)]
    best = max(finite) if finite else math.nan
    return [a / best if best and math.isfinite(best) and a is not None else math.nan for a in probe_accuracies]
