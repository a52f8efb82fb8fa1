"""Stage report: the self-contained HTML report -> results/report/index.html.

Usage: python scripts/report.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('report', sys.argv[1:]))
