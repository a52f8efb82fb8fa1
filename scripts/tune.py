"""Stage tune: real HPO of one task, strategy next to baseline -> results/tune/TASK.parquet.

Usage: python scripts/tune.py TASK [--params PARAMS]
"""
import sys

from metahpo.cli import main

sys.exit(main(["tune", *sys.argv[1:]]))
