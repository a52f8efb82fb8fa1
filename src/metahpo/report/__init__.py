"""The self-contained HTML report: tables, inline PNG figures, provenance; no external requests.

One module per section under ``metahpo.report.sections``, behind ``metahpo.report.section.Section``.
"""

from metahpo.report.builder import build_report
from metahpo.report.section import SECTIONS

__all__ = ["SECTIONS", "build_report"]
