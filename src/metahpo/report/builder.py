"""``build_report``: every stage's outputs -> one self-contained, escaped HTML file."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from metahpo.config import Params
from metahpo.errors import MetahpoError
from metahpo.io import write_text
from metahpo.report import sections
from metahpo.report.inputs import ResultsTree

SECTIONS = (  # (id, heading): the table of contents and the tests rely on these ids
    ("tasks", "Tasks and meta-features"),
    ("sweeps", "Sweeps"),
    ("loto", "Leave-one-task-out evaluation"),
    ("strategies", "HPO strategies: replay benchmark and tuning runs"),
    ("convergence", "Recommended configs trained to convergence"),
    ("provenance", "Provenance"),
)


def build_report(
    params: Params,
    params_path: str | os.PathLike,
    results_dir: str | os.PathLike,
    out_path: str | os.PathLike,
) -> None:
    """Write the HTML report of the results under ``results_dir`` to ``out_path``, atomically.

    Missing stage outputs become "not available" notes in their section; a missing ``results_dir``
    is a ``MetahpoError``.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise MetahpoError(f"results folder {results_dir} not found; run the pipeline first or pass --results DIR")
    results = ResultsTree(results_dir)
    html = render(
        title=params.report.title,
        tasks=sections.tasks_section(params, results),
        sweeps=sections.sweeps_section(params, results),
        loto=sections.loto_section(params, results),
        strategies=sections.strategies_section(params, results),
        convergence=sections.convergence_section(params, results),
        provenance=sections.provenance_section(Path(params_path), results, params),
    )
    write_text(out_path, html)


def render(**context) -> str:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("metahpo.report", "templates"),
        autoescape=True,  # dataset names, sources and trial messages come from users
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("index.html").render(sections=SECTIONS, headings=dict(SECTIONS), **context)
