"""Small HTML helpers. Every text that reaches the page goes through :func:`esc`
(``html.escape``, quotes included), so class names and file names cannot inject markup.

Hand-written rather than a template engine: the page is a handful of tables and images, and this
keeps the report free of an extra dependency; escaping is done in one place (``esc``)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["esc", "table", "img_file", "img_pil", "section", "CSS"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:16px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1dc;font-size:13px}
main{padding:8px 32px 48px;max-width:1200px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:12px 20px;margin:16px 0}
h2{font-size:17px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #dde2e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
img.plot{max-width:100%;height:auto}
.sev{font-weight:600;border-radius:4px;padding:1px 6px;font-size:12px;color:#fff}
.sev-high{background:#c62828}.sev-medium{background:#ef6c00}.sev-low{background:#5470a0}.sev-info{background:#78909c}
.thumbs{display:flex;flex-wrap:wrap;gap:12px}.thumb{width:140px;font-size:12px;word-break:break-all}
.thumb img{width:128px;height:128px;object-fit:contain;background:#eee;display:block}
pre{background:#f2f4f7;padding:10px;overflow:auto;font-size:12px}
.muted{color:#68707c}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{esc(f"{value:.4g}")}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{esc(value)}</td>'
    return f"<td>{esc(value)}</td>"


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], raw_cols: Sequence[int] = ()) -> str:
    """A table; cells are escaped except those in ``raw_cols`` (markup built here, already escaped)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f"<td>{v}</td>" if i in raw_cols else _cell(v) for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img_file(path: Path, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" alt="{esc(alt)}" src="{_data_uri(Path(path).read_bytes())}">'


def img_pil(image, alt: str) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return f'<img alt="{esc(alt)}" src="{_data_uri(buf.getvalue())}">'


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'
