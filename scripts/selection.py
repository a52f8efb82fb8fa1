"""Stage selection: every selector on K examples of each target against the ground truth -> results/selection/.

Usage: python scripts/selection.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('selection', sys.argv[1:]))
