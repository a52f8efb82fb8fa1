"""Stage lr_eval: every learning-rate method on the held-out tasks, seed by seed -> results/lr_eval/ (resumable).

Usage: python scripts/lr_eval.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('lr_eval', sys.argv[1:]))
