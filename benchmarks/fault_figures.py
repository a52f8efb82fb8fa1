"""The fault suite's figures: each fault test's outcome, seconds and the counts it recorded.

The fault tests (tests/test_faults.py, tests/test_slurm.py) keep their counts with pytest's
``record_property``; a JUnit XML file carries them. Run the suite on a one-node SLURM cluster (as root:
`.ci/slurm-cluster install && .ci/slurm-cluster start`), then:

    python -m pytest tests/test_faults.py tests/test_slurm.py --junitxml=/tmp/faults.xml
    python benchmarks/fault_figures.py /tmp/faults.xml

It prints a Markdown table for docs/PERFORMANCE.md ("Cluster and faults").
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path


def rows(junit: Path) -> list[tuple[str, str, float, str]]:
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
        figures = "; ".join(f"{p.get('name')}: {p.get('value')}" for p in case.iter("property"))
        if not figures:
            continue  # not a fault test (the file type checks, say)
        module = Path(case.get("file", "")).stem  # pytest-xdist's group suffix (name@group) mangles classname
        name = case.get("name").split("@", 1)[0].removeprefix("test_")
        out.append((f"{module}: {name}", outcome, float(case.get("time", 0)), figures))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("junit", type=Path, help="pytest's --junitxml output")
    args = parser.parse_args(argv)
    table = rows(args.junit)
    if not table:
        raise SystemExit(f"{args.junit}: no test recorded figures; run the fault tests with --junitxml first")
    print("| test | outcome | s | figures |\n| --- | --- | --- | --- |")
    for name, outcome, seconds, figures in table:
        print(f"| {name} | {outcome} | {seconds:.1f} | {figures or '-'} |")


if __name__ == "__main__":
    main()
