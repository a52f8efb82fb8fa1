"""Stage train_recommended: train TASK's recommended config -> results/train/TASK/.

Usage: python scripts/train_recommended.py TASK [--params PARAMS]
"""
import sys

from metahpo.cli import main

sys.exit(main(["train-recommended", *sys.argv[1:]]))
