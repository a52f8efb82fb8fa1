"""Stage download: download one dataset into results/data/DATASET/.

Usage: python scripts/download.py DATASET [--params PARAMS]
"""
import sys

from metahpo.cli import main

sys.exit(main(["download", *sys.argv[1:]]))
