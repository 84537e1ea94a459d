import io

from rich.console import Console

from headstart.select.report import RankTable


def _table():
    rows = [{"rank": i + 1, "model": name, "image_size": size, "logme": 0.2 - i / 10, "hscore": 9.5, "nleep": -0.4,
             "linear_probe": 0.9, "knn": 0.8, "combined": 1.0 - i, "predicted_relative_accuracy": 1.0,
             "images_per_s": 300.0, "params_m": 3.37, "imagenet_top1": 74.8, "n_images": 200, "seconds": 1.5,
             "cache_hit": False}
            for i, (name, size) in enumerate([("tf_efficientnet_lite0", 64), ("mobilenetv2_100", 128)])]
    return RankTable(rows, [], {"n_images": 200})


def _render(table, width):
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(table)
    return console.export_text()


def test_wide_terminal_shows_every_column():
    text = _render(_table().rich_table(width=200), 200)
    for header in ("LogME", "H-score", "NLEEP", "probe", "kNN", "combined", "rel acc", "img/s", "params", "IN top-1"):
        assert header in text
    assert "not shown" not in text


def test_narrow_terminal_drops_columns_instead_of_cutting_cells():
    text = _render(_table().rich_table(width=80), 80)
    assert "…" not in text
    assert "tf_efficientnet_lite0" in text and "mobilenetv2_100" in text
    assert "combined" in text and "img/s" in text
    assert "not shown for width" in text and "H-score" in text  # named in the caption
    assert max(len(line) for line in text.splitlines()) <= 80


def test_no_width_keeps_every_column_for_logs():
    table = _table().rich_table()
    assert len(table.columns) == 14  # all but n_images and cache_hit
