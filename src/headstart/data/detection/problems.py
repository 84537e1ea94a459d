"""What is wrong with a detection dataset, one :class:`Problem` per box, line, image or file.

Detection annotations are hand-made and exported by many tools, so a real dataset almost always has
a few broken boxes. By default each problem confined to some images is repaired (a box clipped to
the image) or its box/image left out, and listed -- never silently. With ``strict=True``
:func:`raise_if_strict` turns the whole list into one :class:`~headstart.errors.DataError`.
Problems that make the whole dataset unusable (an unreadable annotation file, no classes) raise at
once, whatever ``strict`` says.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Literal, Sequence

from headstart.errors import DataError

__all__ = ["Problem", "format_problems", "count_problems", "raise_if_strict", "STRICT_SHOWN"]

STRICT_SHOWN = 20
"""Problems listed in the strict-mode error before ``... and N more``."""

Severity = Literal["error", "warning"]
Action = Literal["skipped", "clipped", "dropped", "kept"]


@dataclass(frozen=True)
class Problem:
    """One problem found while reading a dataset.

    ``path`` is the file to fix (the annotation file, or the image for unreadable images), ``where``
    the place in it (``'line 3'``, ``'annotation 17'``, ``'object 2'``) or ``None`` for the whole
    file. ``message`` says what is wrong, ``fix`` what to do about it, ``action`` what headstart did:
    ``'skipped'`` (an image left out), ``'dropped'`` (a box or line left out), ``'clipped'`` (a box
    cut to the image) or ``'kept'`` (used as it is, for example after a size mismatch).
    """

    path: str
    where: str | None
    message: str
    fix: str
    severity: Severity = "error"
    action: Action = "dropped"

    @property
    def location(self) -> str:
        return f"{self.path}, {self.where}" if self.where else self.path

    def format(self) -> str:
        """``path, line 3: message (dropped). Fix.`` on one line."""
        return f"{self.location}: {self.message} ({self.action}). {self.fix}".rstrip()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> Problem:
        return cls(
            path=str(record["path"]),
            where=None if record.get("where") is None else str(record["where"]),
            message=str(record["message"]),
            fix=str(record.get("fix", "")),
            severity=record.get("severity", "error"),
            action=record.get("action", "dropped"),
        )

    def __str__(self) -> str:
        return self.format()


def format_problems(problems: Sequence[Problem], shown: int = STRICT_SHOWN) -> str:
    """One indented line per problem (the first ``shown``), then ``  ... and N more``."""
    lines = [f"  {p.format()}" for p in list(problems)[:shown]]
    if len(problems) > shown:
        lines.append(f"  ... and {len(problems) - shown} more")
    return "\n".join(lines)


def count_problems(problems: Iterable[Problem]) -> dict[str, int]:
    """Problems per action, e.g. ``{'dropped': 3, 'clipped': 1}``, in a fixed order."""
    counter = Counter(p.action for p in problems)
    return {a: counter[a] for a in ("skipped", "dropped", "clipped", "kept") if counter[a]}


def raise_if_strict(problems: Sequence[Problem], strict: bool, where: str) -> None:
    """With ``strict``, raise one :class:`~headstart.errors.DataError` listing every problem (the
    first :data:`STRICT_SHOWN`, then a count); otherwise do nothing."""
    if not strict or not problems:
        return
    raise DataError(
        f"{len(problems)} problem(s) in the dataset {where!r} (strict is on):\n"
        f"{format_problems(problems)}\nFix the files named above, or turn strict off to"
        " repair or leave out these boxes and images and list them instead."
    )
