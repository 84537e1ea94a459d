"""Budgets and the progress display of a study.

``now`` is the one clock of study deadlines (the worker loop, the trials' epoch-end check and the
time left all read it, so tests can move time without sleeping). ``parse_duration`` (from
:mod:`headstart._duration`, shared with ``headstart rank``) reads ``90s``, ``20m``, ``1h30m`` or a
number of seconds. :class:`Progress` prints one line per finished trial (state, value, duration),
then the counts done / pruned / failed, the best so far and the time left; it reads the storage, so
the parent of several worker processes shows the trials of all of them.
"""

from __future__ import annotations

import time

from headstart._duration import format_duration, parse_duration  # re-exported: tune's names for them

__all__ = ["now", "parse_duration", "format_duration", "format_params", "Progress", "trial_counts", "FINISHED",
           "is_interrupted", "requeued_numbers"]


def now() -> float:
    """Seconds since the epoch: the clock that study deadlines are compared with."""
    return time.time()


def format_params(params) -> str:
    """``lr=0.000123 epochs=5 augment=medium``: a trial's params in brief (floats to 3 digits)."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def requeued_numbers(trials) -> set[int]:
    """Numbers of trials whose params were queued again because their worker stopped."""
    return {int(t.user_attrs["requeued_from"]) for t in trials if "requeued_from" in t.user_attrs}


def is_interrupted(trial, requeued: set[int] = frozenset()) -> bool:
    """A failed trial that was interrupted (worker killed) rather than failing on its own."""
    return trial.state.name == "FAIL" and (bool(trial.user_attrs.get("interrupted")) or trial.number in requeued)


FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def trial_counts(trials) -> dict[str, int]:
    """complete / pruned / failed / running / waiting; trials failed by an interruption are
    counted apart (their params were queued again)."""
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0, "interrupted": 0}
    requeued = requeued_numbers(trials)
    for t in trials:
        name = t.state.name
        if is_interrupted(t, requeued):
            counts["interrupted"] += 1
        elif name == "FAIL":
            counts["failed"] += 1
        else:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
    counts["done"] = counts["complete"] + counts["pruned"] + counts["failed"]
    return counts


class Progress:
    """Prints a line for each trial that finished since the last call to :meth:`update`: number,
    state, value, duration, params, then the counts, the best so far and the time left.

    One plain line per trial (never wrapped, no markup), written and flushed as the trial finishes,
    so a log (stderr not a terminal) follows the study as a terminal does."""

    def __init__(self, console, metric: str, *, budget: int | None, deadline: float | None, workers: int = 1):
        self.console = console
        self.metric = metric
        self.budget = budget
        self.deadline = deadline
        self.workers = max(1, workers)
        self._seen: set[int] = set()

    def time_left(self, trials) -> float | None:
        counts = trial_counts(trials)
        durations = [t.duration.total_seconds() for t in trials if t.duration is not None and t.state.name in FINISHED]
        estimate = None
        if self.budget is not None and durations:
            remaining = max(0, self.budget - counts["done"])
            estimate = sum(durations) / len(durations) * remaining / self.workers
        if self.deadline is not None:
            left = max(0.0, self.deadline - now())
            estimate = left if estimate is None else min(estimate, left)
        return estimate

    def update(self, study) -> None:
        trials = study.get_trials(deepcopy=False)
        requeued = requeued_numbers(trials)
        new = [t for t in trials if t.state.name in FINISHED and t.number not in self._seen
               and not is_interrupted(t, requeued)]
        if not new:
            return
        counts = trial_counts(trials)
        try:
            best = study.best_trial
            best_text = f"best {best.value:.4f} (trial {best.number})"
        except ValueError:
            best_text = "no completed trial yet"
        total = f"/{self.budget}" if self.budget is not None else ""
        summary = (
            f"{counts['done']}{total} done ({counts['pruned']} pruned, {counts['failed']} failed)"
            f" | {best_text} | {format_duration(self.time_left(trials))} left"
        )
        for t in sorted(new, key=lambda t: t.number):
            self._seen.add(t.number)
            state = t.state.name.lower()
            if t.state.name == "COMPLETE":
                what = f"{self.metric} {t.value:.4f}"
                if t.user_attrs.get("stopped"):
                    what += f" (stopped at the {t.user_attrs['stopped']})"
            elif t.state.name == "PRUNED":
                last = max(t.intermediate_values) if t.intermediate_values else None
                # the pruner's step counts epochs through the backbone (a probe's epochs are not reported)
                what = f"after {last} backbone epoch(s)" if last is not None else ""
                if t.user_attrs.get("stopped"):
                    what = f"at the {t.user_attrs['stopped']}, before its first epoch"
            else:
                what = str(t.user_attrs.get("fail_reason", "see the log"))[:100]
            secs = t.duration.total_seconds() if t.duration is not None else float("nan")
            params = f" | {format_params(t.params)}" if t.params else ""
            self.console.print(
                f"trial {t.number:>3} {state:<8} {what} ({format_duration(secs)}){params} | {summary}",
                highlight=False, markup=False, emoji=False, soft_wrap=True,
            )
