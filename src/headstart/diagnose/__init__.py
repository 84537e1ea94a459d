"""``headstart doctor``: find why transfer learning underperforms, measure it, say what to change.

Each check is a small function returning a list of :class:`~headstart.diagnose.findings.Finding`
(``check``, ``severity``, ``evidence``, ``fix``); :func:`~headstart.diagnose.run.doctor` runs the ones
that apply to a dataset folder or a run folder and returns them ordered by severity.
"""

from headstart.diagnose.findings import SEVERITIES, Finding, sort_findings
from headstart.diagnose.run import doctor

__all__ = ["Finding", "SEVERITIES", "doctor", "sort_findings"]
