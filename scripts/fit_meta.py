"""Stage fit_meta: meta-models and leave-one-task-out evaluation -> results/meta/.

Usage: python scripts/fit_meta.py [--params PARAMS]
"""
import sys

from metahpo.cli import main

sys.exit(main(["fit-meta", *sys.argv[1:]]))
