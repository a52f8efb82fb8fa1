"""Stage benchmark: replay every HPO strategy leave-one-task-out on the sweeps -> results/benchmark/.

Usage: python scripts/benchmark.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('benchmark', sys.argv[1:]))
