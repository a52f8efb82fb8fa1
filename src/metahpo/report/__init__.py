"""The self-contained HTML report: tables, inline PNG figures, provenance; no external requests."""

from metahpo.report.builder import SECTIONS, build_report

__all__ = ["SECTIONS", "build_report"]
