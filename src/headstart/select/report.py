"""The ranking as a table: rows in rank order, CSV/JSON, a terminal table and a bar chart."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from headstart._io import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["RankTable", "COLUMNS"]

COLUMNS = ["rank", "model", "image_size", "logme", "hscore", "nleep", "linear_probe", "knn", "stride_fit",
           "small_boxes", "combined", "predicted_relative_accuracy", "images_per_s", "params_m", "imagenet_top1",
           "n_images", "n_boxes", "seconds", "cache_hit"]


_SHORT = {"rank": "#", "image_size": "size", "logme": "LogME", "hscore": "H-score", "nleep": "NLEEP",
          "linear_probe": "probe", "knn": "kNN", "predicted_relative_accuracy": "rel acc",
          "images_per_s": "img/s", "params_m": "params", "imagenet_top1": "IN top-1", "seconds": "s",
          "stride_fit": "stride fit", "small_boxes": "< stride"}
# Left out first when a terminal is too narrow: the ranking, the model, its size, the combined
# score, the predicted relative accuracy and images/s stay; the combined score's parts go last.
_DROP_ORDER = ["seconds", "nleep", "hscore", "imagenet_top1", "params_m", "small_boxes", "logme", "knn",
               "linear_probe", "stride_fit"]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value) if isinstance(value, float) else str(value)


def _table_width(cols: list[str], headers: dict[str, str], cells: dict[str, list[str]]) -> int:
    """Characters a rich Table with the default box needs: each column's widest entry plus its
    padding and border (3), plus the closing border."""
    return 1 + sum(3 + max([len(headers[c])] + [len(x) for x in cells[c]]) for c in cols)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RankTable:
    """Candidates in rank order (best first). ``rows`` are dicts with :data:`COLUMNS`; ``skipped``
    lists candidates that could not be scored, each with its reason; ``meta`` holds the dataset
    fingerprint, sample size, budget and timings written to ``rank.json``."""

    def __init__(self, rows: list[dict[str, Any]], skipped: list[dict[str, Any]], meta: dict[str, Any]):
        self.rows = rows
        self.skipped = skipped
        self.meta = meta

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @property
    def best(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    @property
    def best_per_second(self) -> dict[str, Any] | None:
        """The row with the highest predicted relative accuracy x images/s."""
        ok = [r for r in self.rows if r.get("images_per_s") and r.get("predicted_relative_accuracy") is not None]
        return max(ok, key=lambda r: r["predicted_relative_accuracy"] * r["images_per_s"]) if ok else None

    def columns(self) -> list[str]:
        present = {k for r in self.rows for k, v in r.items() if v is not None}
        return [c for c in COLUMNS if c in present]

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "rows": [{k: _clean(v) for k, v in r.items()} for r in self.rows],
                "skipped": self.skipped}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write_json(path, self.to_dict())
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: ("" if _clean(v) is None else v) for k, v in r.items()})
        if path is not None:
            atomic_write_text(path, buf.getvalue())
        return buf.getvalue()

    @classmethod
    def from_json(cls, path: str | Path) -> "RankTable":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows, skipped = data.pop("rows", []), data.pop("skipped", [])
        return cls(rows, skipped, data)

    # ---------------------------------------------------------------------------- display
    def rich_table(self, width: int | None = None):
        """The ranking as a rich Table. With ``width`` (a terminal's columns), the least needed
        columns are left out until the table fits, instead of rich cutting every cell to "…";
        rank.csv and rank.json keep them all."""
        from rich.table import Table

        # floats other than these show 3 decimals; ints and text as they are
        fmt = {"params_m": "{:.2f}M", "images_per_s": "{:.0f}", "imagenet_top1": "{:.1f}", "seconds": "{:.1f}"}
        cols = [c for c in self.columns() if c not in ("cache_hit", "n_images", "n_boxes")]
        cells = {c: [_cell(r.get(c), fmt.get(c, "{:.3f}")) for r in self.rows] for c in cols}
        headers = {c: _SHORT.get(c, c.replace("_", " ")) for c in cols}
        dropped = []
        for c in _DROP_ORDER if width else ():
            if _table_width(cols, headers, cells) <= width:
                break
            if c in cols:
                cols.remove(c)
                dropped.append(headers[c])
        caption = f"not shown for width: {', '.join(dropped)} (see rank.csv)" if dropped else None
        boxes = self.rows[0].get("n_boxes") if self.rows else None
        what = f"{self.meta.get('n_images', '?')} images" + (f", {boxes} boxes" if boxes is not None else "")
        table = Table(title=f"headstart rank ({what} per candidate)", caption=caption)
        for c in cols:
            table.add_column(headers[c], justify="left" if c == "model" else "right", no_wrap=c == "model")
        for i in range(len(self.rows)):
            table.add_row(*(cells[c][i] for c in cols))
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=200, record=True, file=io.StringIO())
        console.print(self.rich_table())
        for s in self.skipped:
            console.print(f"skipped {s['model']}" + (f" @{s['image_size']}px" if s.get("image_size") else "")
                          + f": {s['reason']}")
        return console.export_text()

    def plot(self, path: str | Path) -> Path:
        """Horizontal bars of the combined score, best on top, labelled with images/s."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        rows = list(reversed(self.rows))
        labels = [f"{r['model']} @{r['image_size']}" for r in rows]
        values = [r["combined"] if r.get("combined") is not None else 0.0 for r in rows]
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
        bars = ax.barh(labels, values, color=["#2a7ab9" if r is self.rows[0] else "#9bbcd8" for r in rows])
        for bar, r in zip(bars, rows):
            ips = r.get("images_per_s")
            if ips:
                ax.annotate(f" {ips:.0f} img/s", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                            va="center", fontsize=8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel("combined transferability score (z, higher is better)")
        ax.set_title("headstart rank")
        fig.tight_layout()
        try:
            atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        finally:
            plt.close(fig)
        return Path(path)
