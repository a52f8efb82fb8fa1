"""Stage tune: real HPO of one task, tune.strategy next to tune.baseline -> results/tune/TASK.parquet.

Usage: python scripts/tune.py TASK [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('tune', sys.argv[1:]))
