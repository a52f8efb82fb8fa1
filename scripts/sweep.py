"""Stage sweep: grid + random search of one task -> results/sweep/TASK.parquet (resumable).

Usage: python scripts/sweep.py TASK [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('sweep', sys.argv[1:]))
