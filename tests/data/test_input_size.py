"""The input size chosen from the images' native resolution."""

import pytest

from headstart.config import DataConfig
from headstart.data.index import load_dataset
from headstart.data.input_size import input_size_for_data
from headstart.data.validate import median_short_side


@pytest.mark.parametrize(
    ("short", "expected"),
    [(8, 96), (28, 96), (32, 96), (40, 96), (50, 128), (64, 128), (75, 160), (112, 224), (500, 224)],
)
def test_the_rule_twice_the_short_side_floor_96_multiple_of_32_capped_at_pretrained(short, expected):
    size, reason = input_size_for_data(224, short)
    assert size == expected
    assert f"median short side {short}px" in reason


def test_without_a_measurement_the_pretrained_size_is_kept_and_said_so():
    assert input_size_for_data(224, None) == (224, "the model's pretrained size 224px (image sizes not measured)")
    # a model pretrained below the floor is never upsampled past its own size
    assert input_size_for_data(64, 8)[0] == 64


def test_median_short_side():
    assert median_short_side([(10, 20), (30, 5), (8, 8)]) == 8
    assert median_short_side([(100, 60), (40, 90)]) == 60
    assert median_short_side([]) is None


def test_the_data_scan_measures_the_median_short_side(make_image_folder, tmp_path, image_writer):
    root = tmp_path / "d"
    for i, (w, h) in enumerate([(20, 30), (24, 24), (50, 22), (28, 60), (30, 26), (26, 90)]):
        image_writer(root / ("a" if i % 2 else "b") / f"{i}.png", size=(w, h))
    index = load_dataset(DataConfig(path=root), seed=0)
    assert index.median_short_side == 26  # shorts 20, 24, 22, 28, 26, 26
    summary = index.summary()
    assert summary.median_short_side == 26 and "Median image short side: 26px" in summary.format()
    assert summary.to_dict()["median_short_side"] == 26
