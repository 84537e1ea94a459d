import pytest

from headstart.diagnose.findings import Finding, format_findings, sort_findings


def test_findings_are_ordered_by_severity_stably():
    fs = [Finding("a", "low", "e", "f"), Finding("b", "high", "e", "f"), Finding("c", "info", "e", "f"),
          Finding("d", "high", "e", "f"), Finding("e", "medium", "e", "f")]
    assert [f.check for f in sort_findings(fs)] == ["b", "d", "e", "a", "c"]
    assert "[HIGH] b" in format_findings(sort_findings(fs))
    assert format_findings([]) == "No problems found."


def test_unknown_severity_is_rejected():
    with pytest.raises(ValueError, match="severity must be one of.*'severe'"):
        Finding("a", "severe", "e", "f")
