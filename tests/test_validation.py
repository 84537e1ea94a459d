import pytest

from headstart._validation import check_choice, check_number, close_matches, did_you_mean
from headstart.errors import ConfigError


def test_close_matches_and_hint():
    assert close_matches("mobilenetv2", ["mobilenetv2_100", "resnet50"]) == ["mobilenetv2_100"]
    assert did_you_mean("zzzz", ["resnet50"]) == ""
    assert did_you_mean("resnet5", ["resnet50", "resnet18"]).startswith(" Did you mean 'resnet50'")


def test_check_choice():
    assert check_choice("format", "csv", ["csv", "json"]) == "csv"
    with pytest.raises(ConfigError, match=r"The 'format' parameter must be one of \{'csv', 'json'\}. Got 'jsn'. Did you mean 'json'\?"):
        check_choice("format", "jsn", ["csv", "json"])


@pytest.mark.parametrize(
    "value, kwargs, match",
    [
        (-1, dict(low=0), r"The 'lr' parameter must be a float in \(0, inf\). Got -1."),
        (1.5, dict(low=1, kind=int, closed="left"), r"The 'lr' parameter must be an int in \[1, inf\). Got 1.5."),
        ("x", dict(), r"The 'lr' parameter must be a float in \(-inf, inf\). Got 'x'."),
        (True, dict(), r"Got True."),
        (2, dict(high=1, closed="both", low=0), r"must be a float in \[0, 1\]. Got 2."),
    ],
)
def test_check_number(value, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        check_number("lr", value, **kwargs)


def test_check_number_accepts_bounds_and_converts():
    assert check_number("k", 0, kind=int, low=0, closed="left") == 0
    assert check_number("k", 3.0, kind=int, low=1, closed="left") == 3
    with pytest.raises(ConfigError, match=r"The 'k' parameter must be an int in \(0, inf\). Got 0."):
        check_number("k", 0, kind=int, low=0)
