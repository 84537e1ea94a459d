"""Choosing the pretrained model that will transfer best, before fine-tuning (``headstart rank``).

* :mod:`~headstart.select.feature_cache` -- penultimate features on disk, keyed by model, weights,
  preprocessing and image list, shared by rank, fit's linear probe and tune's trials;
* :mod:`~headstart.select.estimators` -- transferability estimators (LogME, H-score, NLEEP, linear
  probe and k-NN accuracy under cross-validation), each with its paper;
* :mod:`~headstart.select.combine` -- how the scores become one ranking (validated in
  ``benchmarks/rank_quality.py``);
* :mod:`~headstart.select.cost` -- measured images/s and parameter counts;
* :mod:`~headstart.select.rank` -- :func:`rank`, the API behind ``headstart rank``.

Nothing heavy is imported here.
"""

from __future__ import annotations

__all__ = ["rank", "RankTable", "parse_budget"]


def __getattr__(name: str):
    if name in __all__:
        # not `from headstart.select import rank`: that looks up the name `rank` here first, which
        # calls this function again (endlessly) while the submodule is not imported yet
        import importlib

        return getattr(importlib.import_module("headstart.select.rank"), name)
    raise AttributeError(f"module 'headstart.select' has no attribute {name!r}")
