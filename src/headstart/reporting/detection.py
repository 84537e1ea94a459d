"""The report page of a detection run: metrics and per-class AP, the plots, the dataset summary,
and a gallery of the evaluated images with ground truth and predictions drawn, worst first.

Everything comes from the run folder (metrics.json, split.json with the boxes, predictions.json,
plots/, model/*.json), so the page can be rebuilt at any time with ``headstart report RUN``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from headstart.reporting.html import esc, img_file, img_pil, section, table

__all__ = ["detection_sections", "detection_subtitle", "gallery_rows"]

GALLERY_IMAGES = 12
_MATCH_IOU = 0.5
_COLOURS = {"truth": (40, 180, 60), "hit": (40, 110, 230), "false": (220, 40, 40), "missed": (250, 200, 0)}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def detection_subtitle(run: Path) -> str:
    metrics = _read_json(run / "metrics.json") or {}
    model = _read_json(run / "model" / "model.json") or {}
    det = (model.get("detector") or {}).get("detector", "")
    if "map" not in metrics:
        return f"{det} on {model.get('architecture', '')}"
    return (f"{det} on {model.get('architecture', '')} — {metrics.get('split', 'test')} mAP {metrics['map']:.3f},"
            f" mAP50 {metrics['map50']:.3f}")


def _section_dataset(run: Path) -> str:
    from headstart.data.detection import load_detection_split

    try:
        index = load_detection_split(run / "split.json")
    except Exception:  # noqa: BLE001 - a moved dataset: the report still renders without this section
        return ""
    text = index.summary().format()
    return section("Dataset", f"<pre>{esc(text)}</pre>", "dataset")


def _section_metrics(run: Path) -> str:
    m = _read_json(run / "metrics.json")
    if not m:
        return ""
    keys = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "ar1", "ar10", "ar100",
            "conf_threshold", "f1_at_threshold", "n_images", "n_boxes", "best_epoch")
    head = [[k, m.get(k)] for k in keys if k in m]
    per = m.get("per_class", {})
    rows = [[c, v.get("ap"), v.get("ap50"), v.get("n_boxes"), v.get("precision"), v.get("recall")]
            for c, v in sorted(per.items(), key=lambda kv: (kv[1].get("ap") is None, kv[1].get("ap") or 0))]
    body = (f"<p>COCO metrics on the <b>{esc(m.get('split', 'test'))}</b> split (AP@[.5:.95] unless named);"
            " the classes that pull mAP down come first.</p>" + table(["metric", "value"], head)
            + "<h3>Per class</h3>" + table(["class", "AP", "AP50", "boxes", "precision", "recall"], rows))
    anchors = m.get("anchors")
    if anchors:
        body += (f"<p>Anchors ({esc(anchors.get('used'))}): they match {anchors.get('coverage', 0):.0%} of the"
                 f" training boxes at IoU 0.5; torchvision's defaults {anchors.get('default_coverage', 0):.0%}.</p>")
    for name, title in (("pr_curves.png", "Precision-recall (IoU 0.5)"), ("f1_confidence.png", "F1 against confidence"),
                        ("confusion_matrix.png", "Confusion matrix (with background)")):
        png = run / "plots" / name
        if png.is_file():
            body += f"<h3>{esc(title)}</h3>" + img_file(png, title)
    return section("Test metrics", body, "metrics")


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def gallery_rows(run: Path) -> list[dict[str, Any]]:
    """Per evaluated image: its ground truth, its predictions above the run's threshold split into
    hits and false positives, the missed boxes, and the error count (misses + false positives);
    sorted worst first."""
    split = _read_json(run / "split.json")
    preds = _read_json(run / "predictions.json")
    metrics = _read_json(run / "metrics.json") or {}
    model = _read_json(run / "model" / "model.json") or {}
    if not split or preds is None:
        return []
    conf = model.get("conf") or metrics.get("conf_threshold") or 0.0
    by_image: dict[int, list[dict]] = {}
    for p in preds:
        if p["score"] >= conf:
            x, y, w, h = p["bbox"]
            by_image.setdefault(int(p["image_id"]), []).append(
                {"box": (x, y, x + w, y + h), "label": int(p["category_id"]) - 1, "score": float(p["score"])})
    root = Path(split.get("root", ""))
    rows = []
    for s in split["splits"].get(metrics.get("split", "test"), []):
        truth = [(tuple(b), lab) for b, lab, ign in zip(s["boxes"], s["labels"], s["ignore"]) if not ign]
        dets = sorted(by_image.get(int(s["image_id"]), []), key=lambda d: -d["score"])
        used, hits, false = set(), [], []
        for d in dets:
            best, best_iou = None, _MATCH_IOU
            for k, (box, lab) in enumerate(truth):
                if k not in used and lab == d["label"] and _iou(box, d["box"]) >= best_iou:
                    best, best_iou = k, _iou(box, d["box"])
            if best is None:
                false.append(d)
            else:
                used.add(best)
                hits.append(d)
        missed = [t for k, t in enumerate(truth) if k not in used]
        path = Path(s["path"])
        rows.append({"path": path if path.is_absolute() else root / path, "truth": truth, "hits": hits,
                     "false": false, "missed": missed, "errors": len(missed) + len(false)})
    rows.sort(key=lambda r: (-r["errors"], str(r["path"])))
    return rows


def _card(row: dict[str, Any], classes: list[str]) -> str:
    from PIL import ImageDraw

    from headstart.data.decode import open_rgb

    try:
        image = open_rgb(row["path"])
    except Exception:  # noqa: BLE001 - a moved or unreadable file: the card says so
        return f'<div class="thumb"><div class="muted">(image not readable)</div>{esc(row["path"].name)}</div>'
    draw = ImageDraw.Draw(image)
    width = max(1, round(max(image.size) / 200))
    for box, _ in row["truth"]:
        draw.rectangle(box, outline=_COLOURS["truth"], width=width)
    for box, _ in row["missed"]:
        draw.rectangle(box, outline=_COLOURS["missed"], width=width + 1)
    for d in row["hits"]:
        draw.rectangle(d["box"], outline=_COLOURS["hit"], width=width)
    for d in row["false"]:
        draw.rectangle(d["box"], outline=_COLOURS["false"], width=width)
        draw.text((d["box"][0] + 2, d["box"][1] + 1), classes[d["label"]] if d["label"] < len(classes) else "?",
                  fill=_COLOURS["false"])
    image.thumbnail((256, 256))
    missed = ", ".join(classes[lab] for _, lab in row["missed"]) or "none"
    false = ", ".join(f"{classes[d['label']]} {d['score']:.2f}" for d in row["false"]) or "none"
    return (f'<div class="thumb" style="width:270px">{img_pil(image, row["path"].name)}'
            f'<div>{esc(row["path"].name)}: {len(row["truth"])} boxes</div>'
            f'<div>missed: {esc(missed)}</div><div>false positives: {esc(false)}</div></div>')


def _section_gallery(run: Path) -> str:
    rows = gallery_rows(run)
    if not rows:
        return ""
    classes = list((_read_json(run / "model" / "labels.json") or {}).get("classes", []))
    wrong = sum(1 for r in rows if r["errors"])
    legend = ("<p>Green: ground truth; blue: correct detections; red: false positives; yellow: missed boxes"
              f" (IoU 0.5, scores above the run's threshold). {wrong} of {len(rows)} evaluated images have an"
              " error; the worst come first.</p>")
    cards = "".join(_card(r, classes) for r in rows[:GALLERY_IMAGES])
    return section("Evaluated images, worst first", legend + f'<div class="thumbs">{cards}</div>', "gallery")


def detection_sections(run: Path, *, curves: str, config: str, findings: str) -> str:
    return "".join([findings, _section_dataset(run), curves, _section_metrics(run), _section_gallery(run), config])
