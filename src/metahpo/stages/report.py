"""Stage report: every stage's outputs -> one self-contained HTML page."""

from __future__ import annotations

from metahpo import pipeline
from metahpo.report import build_report


def run(params, job) -> None:
    (out_path,) = job.outs
    build_report(params, job.params_file, pipeline.RESULTS, out_path)
