"""Stage download: download and split one dataset -> results/data/DATASET/.

Usage: python scripts/download.py DATASET [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('download', sys.argv[1:]))
