"""What a report page weighs, and where: its bytes per section, split into figures and the rest.

Builds the report of a results tree with the installed code (as the report stage does), or reads a
report already built, and prints the page's size, its figures' count and bytes (base64 included),
and, per section, its figure and text bytes. Issue 15 asks the default profile's page to stay under
1 MB. Not a test; run it by hand:

    python benchmarks/report_size.py --params params.yaml --results results   # builds it
    python benchmarks/report_size.py --html results/report/index.html        # reads it
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

FIGURE = re.compile(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+")
SECTION = re.compile(r'<section id="([^"]+)"')
LIMIT = 1_000_000


def weigh(html: str) -> list[tuple[str, int, int, int]]:
    """Per section, in page order: (id, figures, figure bytes, other bytes); the head and contents as "(page)"."""
    starts = [(m.start(), m.group(1)) for m in SECTION.finditer(html)]
    bounds = [(0, "(page)")] + starts
    rows = []
    for index, (start, name) in enumerate(bounds):
        end = bounds[index + 1][0] if index + 1 < len(bounds) else len(html)
        part = html[start:end].encode("utf-8")
        figures = FIGURE.findall(html[start:end])
        figure_bytes = sum(len(figure) for figure in figures)
        rows.append((name, len(figures), figure_bytes, len(part) - figure_bytes))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--html", type=Path, help="a report already built")
    source.add_argument("--results", type=Path, help="a results tree to build the report of (with --params)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    if args.html:
        html = args.html.read_text(encoding="utf-8")
    else:
        from metahpo.config import load_params
        from metahpo.report import build_report

        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "index.html"
            started = time.perf_counter()
            build_report(load_params(args.params), args.params, args.results, out)
            print(f"built in {time.perf_counter() - started:.1f} s")
            html = out.read_text(encoding="utf-8")
    rows = weigh(html)
    total = len(html.encode("utf-8"))
    print(f"{'section':<14} {'figures':>7} {'figure bytes':>13} {'other bytes':>12}")
    for name, count, figure_bytes, other in rows:
        print(f"{name:<14} {count:>7} {figure_bytes:>13,} {other:>12,}")
    figures = sum(row[1] for row in rows)
    figure_bytes = sum(row[2] for row in rows)
    print(f"{'total':<14} {figures:>7} {figure_bytes:>13,} {total - figure_bytes:>12,}")
    verdict = "under" if total < LIMIT else "OVER"
    print(f"page: {total:,} bytes, {verdict} {LIMIT:,}")


if __name__ == "__main__":
    main()
