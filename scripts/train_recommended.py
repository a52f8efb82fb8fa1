"""Stage train_recommended: full-budget training of one task's recommended config -> results/train/TASK/.

Usage: python scripts/train_recommended.py TASK [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('train_recommended', sys.argv[1:]))
