"""What a finished (or stopped) study leaves in its folder: the results table, ``trials.csv``,
``best.yaml``, the plots of Optuna's matplotlib visualisation and the best config's run folder."""

from __future__ import annotations

import csv
import io
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from headstart._io import atomic_write_text
from headstart.errors import HeadstartError
from headstart.tuning.progress import format_duration, is_interrupted, requeued_numbers, trial_counts

__all__ = ["TuneResult", "trial_rows", "write_trials_csv", "write_best_yaml", "write_plots", "write_outputs"]


@dataclass
class TuneResult:
    """What a study found. ``final`` is the FitResult of the best config's run folder."""

    run_dir: Path
    study_name: str
    storage: str
    metric: str
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_config_path: Path
    counts: dict[str, int]
    trials: list[dict[str, Any]] = field(repr=False, default_factory=list)
    final: Any = field(repr=False, default=None)



def trial_rows(study, test_key: str = "test_accuracy") -> list[dict[str, Any]]:
    """One row a trial; ``test_key``: the user attr of the objective's metric on the evaluated split
    (``test_accuracy``, ``test_map``)."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    requeued = requeued_numbers(trials)
    for t in trials:
        state = "INTERRUPTED" if is_interrupted(t, requeued) else t.state.name
        rows.append({
            "trial": t.number,
            "state": state,
            "value": t.value if t.state.name == "COMPLETE" else None,
            "duration_s": round(t.duration.total_seconds(), 2) if t.duration is not None else None,
            "epochs_run": t.user_attrs.get("epochs_run", len(t.intermediate_values) or None),
            test_key: t.user_attrs.get(test_key),
            "default": bool(t.user_attrs.get("default", False)),
            "reason": t.user_attrs.get("fail_reason", ""),
            "stopped": t.user_attrs.get("stopped", ""),
            "worker": t.user_attrs.get("worker", ""),
            **{f"param_{k}": v for k, v in t.params.items()},
        })
    return rows


def write_trials_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def best_config_tree(best, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The best trial's resolved config.yaml (every 'auto' replaced), or its params applied to
    the base config when its folder is on another machine."""
    from headstart.config import load_yaml
    from headstart.tuning.objective import Objective
    from headstart.tuning.space import saved_space

    run_dir = Path(best.user_attrs.get("run_dir", ""))
    if (run_dir / "config.yaml").is_file():
        tree = load_yaml(run_dir / "config.yaml")
    else:
        obj = Objective(settings["base"], saved_space(settings), ".", settings["metric"],
                        task=settings.get("task", "classify"))
        tree = obj.trial_config(best.params, Path("."))
    tree["out"] = None
    tree["resume"] = False
    return tree


def write_best_yaml(tree: Mapping[str, Any], path: Path) -> Path:
    from headstart.config import build_config

    text = "# best config of a headstart tune study: headstart fit --config best.yaml\n" + build_config(config=dict(tree)).to_yaml()
    return atomic_write_text(path, text)


def write_plots(study, plots_dir: Path) -> list[Path]:
    """Optimisation history, parameter importances and parallel coordinates; a plot Optuna cannot
    draw yet (too few completed trials) is skipped."""
    import warnings

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("history", vis.plot_optimization_history), ("importances", vis.plot_param_importances),
                       ("parallel_coordinates", vis.plot_parallel_coordinate)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = draw(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.savefig(plots_dir / f"{name}.png", dpi=110, bbox_inches="tight")
            written.append(plots_dir / f"{name}.png")
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
            pass  # e.g. importances need two completed trials whose params differ
        finally:
            plt.close("all")
    return written


def _print_table(rows: list[dict[str, Any]], metric: str, console, maximize: bool) -> None:
    from rich.table import Table

    table = Table(title=f"trials by {metric}", show_lines=False)
    for col in ("trial", "state", metric, "time", "params"):
        table.add_column(col)
    done = [r for r in rows if r["value"] is not None]
    done.sort(key=lambda r: r["value"], reverse=maximize)
    others = [r for r in rows if r["value"] is None]
    for r in (done + others)[:20]:
        params = ", ".join(f"{k[6:]}={_fmt(v)}" for k, v in r.items() if k.startswith("param_"))
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        table.add_row(str(r["trial"]) + (" (default)" if r["default"] else ""), r["state"].lower(), value,
                      format_duration(r["duration_s"]), params or r["reason"][:60])
    console.print(table)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _final_run(best, tree: Mapping[str, Any], final_dir: Path, console, *, own: bool):
    """The run folder of the best config: the best trial's own folder copied when it is on this
    machine (same config, same seed: training it again would give the same model), else a fit.
    A trial stopped at the study's deadline trained fewer epochs than its config says, so its
    config is trained again in full: the final training is not part of the study's timeout."""
    import yaml

    from headstart.workflows.fit import fit, load

    src = Path(best.user_attrs.get("run_dir", ""))
    if own and final_dir.exists():
        # <study>/best, left by an earlier run of this (resumed) study; never a folder the caller
        # named (`fit --tune --out runs/best` holds the study itself)
        shutil.rmtree(final_dir)
    if (src / "model" / "model.safetensors").is_file() and not best.user_attrs.get("stopped"):
        shutil.copytree(src, final_dir, ignore=shutil.ignore_patterns("checkpoints", "cache"), dirs_exist_ok=True)
        cfg = yaml.safe_load((final_dir / "config.yaml").read_text(encoding="utf-8"))
        cfg["out"] = str(final_dir)
        atomic_write_text(final_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        return load(final_dir)
    why = " (its trial was stopped at the timeout)" if best.user_attrs.get("stopped") else ""
    console.print(f"training the best config in {final_dir}{why}")
    return fit(config={**tree, "out": str(final_dir)}, verbose=False)


def write_outputs(run_dir: Path, settings: Mapping[str, Any], study, *, console, final: bool, final_dir: Path):
    from headstart.tasks import get_task
    from headstart.tuning.objective import metric_direction

    metric = settings["metric"]
    task = get_task(settings.get("task", "classify"))
    rows = trial_rows(study, f"test_{task.test_metric}")
    write_trials_csv(rows, run_dir / "trials.csv")
    counts = trial_counts(study.get_trials(deepcopy=False))
    _print_table(rows, metric, console, metric_direction(metric, task.name) == "max")
    try:
        best = study.best_trial
    except ValueError:
        reasons = sorted({r["reason"] for r in rows if r["reason"]})
        raise HeadstartError(
            f"No trial of study {settings['study']!r} completed ({counts['failed']} failed, {counts['pruned']} pruned"
            f"{'; reasons: ' + '; '.join(reasons)[:500] if reasons else ''}). Widen the budget (--trials, --timeout) "
            "or fix the search space, then continue with --resume."
        ) from None
    write_plots(study, run_dir / "plots")
    tree = best_config_tree(best, settings)
    write_best_yaml(tree, run_dir / "best.yaml")
    own = final_dir.resolve() == (run_dir / "best").resolve()
    final_result = _final_run(best, tree, final_dir, console, own=own) if final else None
    default = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("default") and t.value is not None]
    if default and not math.isnan(default[0].value):
        console.print(f"default config: {metric} {default[0].value:.4f}; best: {best.value:.4f} (trial {best.number})")
    console.print(f"best config: {run_dir / 'best.yaml'}" + (f"; model: {final_dir}" if final else ""))
    return TuneResult(run_dir=run_dir, study_name=settings["study"], storage=settings["storage"], metric=metric,
                      best_value=float(best.value), best_params=dict(best.params), best_trial=best.number,
                      best_config_path=run_dir / "best.yaml", counts=counts, trials=rows, final=final_result)
