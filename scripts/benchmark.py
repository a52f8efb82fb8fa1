"""Stage benchmark: replay HPO strategies on the sweeps -> results/benchmark/.

Usage: python scripts/benchmark.py [--params PARAMS]
"""
import sys

from metahpo.cli import main

sys.exit(main(["benchmark-sweeps", *sys.argv[1:]]))
