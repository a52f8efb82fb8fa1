"""Stage report: the HTML report -> results/report/index.html.

Usage: python scripts/report.py [--params PARAMS]
"""
import sys

from metahpo.cli import main

sys.exit(main(["report", *sys.argv[1:]]))
