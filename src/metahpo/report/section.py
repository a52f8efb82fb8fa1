"""The report section interface and the ordered registry the builder renders.

A section is an id (the ``<section>`` element's id and the contents' anchor), a heading, a Jinja
partial (``templates/sections/<id>.html`` unless given) and ``build(inputs) -> dict``: the context
the partial renders as ``data``. The builder (``metahpo.report.builder``) renders every registered
section in registration order: the table of contents, the ``<section id>`` element and its ``<h2>``
heading come from here, the rest from the partial.

Adding a section: a module ``metahpo/report/sections/<id>.py`` that calls ``SECTIONS.register``,
its partial ``metahpo/report/templates/sections/<id>.html``, and one import line in
``metahpo/report/sections/__init__.py``, whose import order is the report's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from metahpo.registry import Registry
from metahpo.report.inputs import ResultsTree

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


@dataclass(frozen=True)
class ReportInputs:
    """What every section is built from."""

    params: Params
    params_path: Path
    results: ResultsTree


@dataclass(frozen=True)
class Section:
    id: str
    heading: str
    build: Callable[[ReportInputs], dict]
    template: str = ""  # the partial, relative to templates/; "" is sections/<id>.html

    def __post_init__(self) -> None:
        if not self.template:
            object.__setattr__(self, "template", f"sections/{self.id}.html")


class SectionRegistry:
    """id -> section (a ``metahpo.registry.Registry``), iterated in the order the sections registered."""

    def __init__(self) -> None:
        self._by_id: Registry[Section] = Registry("report section")
        self._order: list[Section] = []

    def register(self, section: Section) -> Section:
        self._by_id.register(section.id, section)  # a second section with the same id is an error
        self._order.append(section)
        return section

    def get(self, section_id: str) -> Section:
        return self._by_id.get(section_id)

    def ids(self) -> list[str]:
        return [section.id for section in self._order]

    def __iter__(self) -> Iterator[Section]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


SECTIONS = SectionRegistry()
