"""Assemble the run report: dataset summary, ranking and tuning tables (when present), learning
curves, confusion matrix, per-class metrics, worst-predicted images, doctor findings, config and
provenance. Each ``_section_*`` returns HTML (empty when the run has nothing for it)."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

from headstart.reporting.html import CSS, esc, img_file, img_pil, section, table

__all__ = ["build_report", "write_report"]

WORST_IMAGES = 12


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _section_dataset(run: Path) -> str:
    split = _read_json(run / "split.json")
    if not split:
        return ""
    classes = split["classes"]
    names = list(split["splits"])
    counts = {s: [0] * len(classes) for s in names}
    for s, rows in split["splits"].items():
        for _, label in rows:
            counts[s][label] += 1
    rows = [[c, *[counts[s][i] for s in names], sum(counts[s][i] for s in names)] for i, c in enumerate(classes)]
    rows.append(["total", *[sum(counts[s]) for s in names], sum(sum(v) for v in counts.values())])
    intro = f'<p>Root <code>{esc(split.get("root"))}</code>, layout {esc(split.get("layout"))}, {len(classes)} classes.</p>'
    return section("Dataset", intro + table(["class", *names, "all"], rows), "dataset")


def _generic_table(records: Sequence[dict[str, Any]], limit: int = 50) -> str:
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    return table(keys, ([r.get(k, "") for k in keys] for r in records[:limit]))


def _rank_file(run: Path) -> Path | None:
    """``RUN/rank.json``, else the one ``headstart rank`` wrote for this dataset (runs/<name>-rank)."""
    if (run / "rank.json").is_file():
        return run / "rank.json"
    try:
        import yaml

        from headstart.select.rank import default_rank_dir

        data_path = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}).get("data", {}).get("path")
        candidate = default_rank_dir(data_path) / "rank.json" if data_path else None
    except Exception:  # no config, or no ranking module: no ranking section
        return None
    return candidate if candidate is not None and candidate.is_file() else None


def _section_ranking(run: Path) -> str:
    found = _rank_file(run)
    data = _read_json(found) if found is not None else None
    if data is None:
        return ""
    records = data if isinstance(data, list) else next((v for v in data.values() if isinstance(v, list)), [])
    records = [r for r in records if isinstance(r, dict)]
    if not records:
        return section("Model ranking", f"<pre>{esc(json.dumps(data, indent=1)[:5000])}</pre>", "ranking")
    return section("Model ranking", _generic_table(records), "ranking")


def _section_tuning(run: Path) -> str:
    found = sorted(run.glob("trials.csv")) + sorted(run.glob("*/trials.csv"))
    if not found:
        return ""
    rows = _read_csv(found[0])
    return section("Tuning history", f"<p class=muted>{esc(found[0].relative_to(run))}, {len(rows)} trials.</p>"
                   + _generic_table(rows, limit=200), "tuning")


def _section_curves(run: Path) -> str:
    png = run / "plots" / "learning_curves.png"
    if not png.is_file():
        from headstart.run_folder import RunFolder
        from headstart.tasks import task_of_run

        plot_learning_curves = task_of_run(run).part("plot_history", "the report's learning curves")
        history = RunFolder(run).read_history()
        if not history:
            return ""
        with tempfile.TemporaryDirectory() as tmp:
            out = plot_learning_curves(history, Path(tmp) / "curves.png")
            return section("Learning curves", img_file(out, "learning curves"), "curves")
    return section("Learning curves", img_file(png, "learning curves"), "curves")


def _section_metrics(run: Path) -> str:
    metrics = _read_json(run / "metrics.json")
    if not metrics:
        return ""
    head = [["accuracy", metrics.get("accuracy")], ["balanced accuracy", metrics.get("balanced_accuracy")],
            ["macro F1", metrics.get("macro_f1")], [f"top-{metrics.get('top_k')} accuracy", metrics.get("top_k_accuracy")],
            ["images", metrics.get("n_test")], ["best epoch", metrics.get("best_epoch")]]
    per = metrics.get("per_class", {})
    per_rows = [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in per.items()]
    body = (f"<p>On the <b>{esc(metrics.get('split', 'test'))}</b> split.</p>" + table(["metric", "value"], head)
            + "<h3>Per class</h3>" + table(["class", "precision", "recall", "F1", "support"], per_rows))
    cm = metrics.get("confusion_matrix")
    png = run / "plots" / "confusion_matrix.png"
    if png.is_file():
        body += "<h3>Confusion matrix</h3>" + img_file(png, "confusion matrix")
    elif cm:
        classes = metrics.get("classes", [])
        body += "<h3>Confusion matrix (rows: true)</h3>" + table(["", *classes], ([c, *row] for c, row in zip(classes, cm)))
    return section("Test metrics", body, "metrics")


def _thumb(path: str) -> str:
    from headstart.data.decode import open_rgb

    try:
        image = open_rgb(path)
    except Exception:  # a moved or unreadable file: the report still renders
        return '<div class="muted">(image not readable)</div>'
    image.thumbnail((128, 128))
    return img_pil(image, Path(path).name)


def _section_worst(run: Path) -> str:
    pred = run / "predictions.csv"
    if not pred.is_file():
        return ""
    rows = _read_csv(pred)
    wrong = sorted((r for r in rows if r["true"] != r["predicted"]), key=lambda r: -float(r["prob"]))
    right = sorted((r for r in rows if r["true"] == r["predicted"]), key=lambda r: float(r.get("true_prob", r["prob"])))
    worst = (wrong + right)[:WORST_IMAGES]
    if not worst:
        return ""
    cards = [f'<div class="thumb">{_thumb(r["path"])}<div>{esc(Path(r["path"]).name)}</div>'
             f'<div>given <b>{esc(r["true"])}</b></div><div>predicted <b>{esc(r["predicted"])}</b> ({float(r["prob"]):.0%})</div></div>'
             for r in worst]
    intro = f"<p>{len(wrong)} of {len(rows)} evaluation images are misclassified; the most confident mistakes first.</p>"
    return section("Worst-predicted images", intro + f'<div class="thumbs">{"".join(cards)}</div>', "worst")


def _section_findings(findings) -> str:
    if findings is None:
        return ""
    if not findings:
        return section("Doctor findings", "<p>No problems found.</p>", "doctor")
    rows = [[f'<span class="sev sev-{esc(f.severity)}">{esc(f.severity)}</span>', f.check, f.evidence, f.fix] for f in findings]
    return section("Doctor findings", table(["severity", "check", "evidence", "fix"], rows, raw_cols=(0,)), "doctor")


def _section_config(run: Path) -> str:
    parts = []
    if (run / "config.yaml").is_file():
        parts.append("<h3>config.yaml</h3><pre>" + esc((run / "config.yaml").read_text(encoding="utf-8")) + "</pre>")
    for name in ("provenance.json", "preprocessing.json", "model.json"):
        data = _read_json(run / "model" / name)
        if data is not None:
            parts.append(f"<h3>{esc(name)}</h3><pre>{esc(json.dumps(data, indent=2))}</pre>")
    return section("Configuration and provenance", "".join(parts), "config") if parts else ""


def build_report(run_dir: str | Path, *, findings=None, doctor_level: str | None = "quick") -> str:
    """The report page as a string. ``findings``: doctor findings to show; when ``None`` the doctor
    runs at ``doctor_level`` (``None``: no doctor section)."""
    run = Path(run_dir)
    if findings is None and doctor_level is not None:
        from headstart.diagnose.run import RUN_CHECKED_TASKS
        from headstart.tasks import task_of_run

        if task_of_run(run).name in RUN_CHECKED_TASKS:
            from headstart.diagnose import doctor

            findings = doctor(run, level=doctor_level)
    metrics = _read_json(run / "metrics.json") or {}
    model = _read_json(run / "model" / "model.json") or {}
    if model.get("task") == "detect":
        from headstart.reporting.detection import detection_sections, detection_subtitle

        subtitle = detection_subtitle(run)
        body = detection_sections(run, curves=_section_curves(run), config=_section_config(run),
                                  findings=_section_findings(findings))
    else:
        subtitle = (f"{model.get('architecture', '')} — {metrics.get('split', 'test')} accuracy {metrics['accuracy']:.2%}"
                    if "accuracy" in metrics else "")
        body = "".join([
            _section_findings(findings), _section_dataset(run), _section_ranking(run), _section_tuning(run),
            _section_curves(run), _section_metrics(run), _section_worst(run), _section_config(run),
        ])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; style-src \'unsafe-inline\'">'
        f"<title>headstart report: {esc(run.name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>headstart report: {esc(run.name)}</h1><p>{esc(subtitle)}</p></header><main>{body}</main></body></html>"
    )


# tasks whose run folders the report knows how to show (its sections read their files)
REPORTED_TASKS = ("classify", "detect")


def write_report(run_dir: str | Path, out: str | Path | None = None, *, findings=None, doctor_level: str | None = "quick") -> Path:
    """Write the report (default ``RUN/report.html``) atomically; return its path."""
    from headstart._io import atomic_write_text
    from headstart.run_folder import RunFolder
    from headstart.tasks import UnsupportedForTask, task_of_run

    run = RunFolder.open(run_dir).path
    spec = task_of_run(run)
    if spec.name not in REPORTED_TASKS:
        raise UnsupportedForTask(f"`headstart report` has no page for {spec.title} runs (task {spec.name!r}) yet;"
                                 f" it reports {', '.join(REPORTED_TASKS)} runs.")
    path = Path(out) if out is not None else run / "report.html"
    atomic_write_text(path, build_report(run, findings=findings, doctor_level=doctor_level))
    return path
