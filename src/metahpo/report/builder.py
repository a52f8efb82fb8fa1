"""``build_report``: every stage's outputs -> one self-contained, escaped HTML file.

The page is ``templates/index.html`` (head, styles, table of contents) around the registered
sections (``metahpo.report.section.SECTIONS``, filled by importing ``metahpo.report.sections``), in
registration order: each is a ``<section id>`` with its heading and its own partial, rendered with
the dict its ``build`` returns as ``data``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import os
from pathlib import Path

import jinja2

import metahpo.report.sections  # noqa: F401  (registers the sections, in report order)
from metahpo.errors import MetahpoError
from metahpo.io import write_text
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


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
    inputs = ReportInputs(params=params, params_path=Path(params_path), results=ResultsTree(results_dir))
    write_text(out_path, render(params.report.title, [(section, section.build(inputs)) for section in SECTIONS]))


def render(title: str, sections: list[tuple[Section, dict]]) -> str:
    """The page: ``sections`` are (section, the context its partial renders as ``data``), in order."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("metahpo.report", "templates"),
        autoescape=True,  # dataset names, sources and trial messages come from users
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,  # a partial's last line ends as it would inline in the page
    )
    return environment.get_template("index.html").render(title=title, sections=sections)
