"""Building a report over synthetic stage outputs and picking it apart: what the section tests share."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from metahpo.config import Params
from metahpo.report import build_report

HOSTILE = "<script>alert(1)</script>"


def unchecked_params(raw: dict) -> Params:
    """Params for synthetic results: made-up sources and spaces, so the registry checks are off."""
    return Params.model_validate(raw, context={"registries": False})


def page(tmp_path: Path, raw: dict, write=None) -> str:
    """The whole report over ``tmp_path/results`` after ``write(results)``; no hostile text survives unescaped."""
    results = tmp_path / "results"
    results.mkdir(parents=True, exist_ok=True)
    if write is not None:
        write(results)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    build_report(unchecked_params(raw), params_path, results, tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert HOSTILE not in html
    return html


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"section {section_id} missing"
    return match.group(1)


def captioned(html: str, caption_start: str) -> str:
    assert f"<caption>{caption_start}" in html, caption_start
    return html.split(f"<caption>{caption_start}", 1)[1].split("</table>", 1)[0]


def table_row(html: str, first_cell: str) -> list[str]:
    """The cells after ``first_cell`` in the row that starts with it."""
    row = re.search(rf"<tr><td>{re.escape(first_cell)}</td>(.*?)</tr>", html, re.S)
    assert row, first_cell
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))


def block(html: str, block_id: str) -> str:
    return html.split(f'id="{block_id}"', 1)[1].split("<h3", 1)[0]


def summary_row(html: str, capability: str) -> tuple[str, str, str]:
    """(figure, sentence or note, link target) of the summary's row for ``capability``."""
    row = re.search(rf"<tr>\s*<td>{re.escape(capability)}</td>(.*?)</tr>", section(html, "summary"), re.S)
    assert row, capability
    figure, sentence, link = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    return figure, sentence, re.search(r'href="#([^"]+)"', link).group(1)


def record_dot_figures(monkeypatch) -> list:
    """Every ``figures.interval_dot_figure`` call's (panels, share_x) from here on; the figure is still drawn."""
    from metahpo.report import figures

    drawn = []
    original = figures.interval_dot_figure

    def spy(panels, share_x=False):
        drawn.append((panels, share_x))
        return original(panels, share_x)

    monkeypatch.setattr(figures, "interval_dot_figure", spy)
    return drawn
