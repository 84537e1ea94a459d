"""``headstart tune``: budgeted hyperparameter search over ``headstart fit`` with Optuna, for any
task that ``fit`` trains (classification: val accuracy; detection: val mAP).

* :mod:`~headstart.tuning.space`: the search space (YAML or the task's defaults for the dataset,
  :class:`~headstart.tasks.base.TaskSearchSpace`) and its validation;
* :mod:`~headstart.tuning.samplers`: TPE, random, grid, CMA-ES; median, halving, Hyperband pruners;
* :mod:`~headstart.tuning.objective`: one trial = one ``headstart.fit`` run, reporting each epoch
  and stopping at the study's deadline;
* :mod:`~headstart.tuning.study`: :func:`tune` (budget, model choice, workers, resume);
* :mod:`~headstart.tuning.storage`: ``tune.json`` and the Optuna storage, requeueing interrupted trials;
* :mod:`~headstart.tuning.outputs`: trials.csv, best.yaml, plots, the best config's run folder;
* :mod:`~headstart.tuning.progress`: the deadline clock, durations and the progress display.

Optuna is imported on use only.
"""

from __future__ import annotations

from headstart.tuning.study import TuneResult, tune

__all__ = ["tune", "TuneResult"]
