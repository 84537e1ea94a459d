"""What a doctor check returns: a :class:`Finding`, and how findings are ordered and printed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

__all__ = ["Finding", "SEVERITIES", "sort_findings", "format_findings"]

SEVERITIES = ("high", "medium", "low", "info")
"""Most to least severe. ``high``: likely costs a lot of accuracy or makes the test score wrong;
``medium``: likely costs some; ``low``: worth a look; ``info``: a measurement, no problem found."""


@dataclass
class Finding:
    """One problem (or measurement): which ``check`` found it, how bad it is, the numbers and files
    that show it (``evidence``) and a concrete config change or command that fixes it (``fix``)."""

    check: str
    severity: str
    evidence: str
    fix: str
    data: dict[str, Any] = field(default_factory=dict)
    """Machine-readable details (files, counts, thresholds) for tools and the report."""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding severity must be one of {SEVERITIES}. Got {self.severity!r}.")

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first; the order of the checks is kept within a severity (stable sort)."""
    return sorted(findings, key=lambda f: f.rank)


def format_findings(findings: Iterable[Finding]) -> str:
    """Plain text for the terminal: one block per finding."""
    findings = list(findings)
    if not findings:
        return "No problems found."
    blocks = []
    for f in findings:
        blocks.append(f"[{f.severity.upper()}] {f.check}\n  evidence: {f.evidence}\n  fix: {f.fix}")
    return "\n\n".join(blocks)
