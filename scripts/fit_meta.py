"""Stage fit_meta: meta-models and their leave-one-task-out evaluation -> results/meta/.

Usage: python scripts/fit_meta.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('fit_meta', sys.argv[1:]))
