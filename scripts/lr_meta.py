"""Stage lr_meta: meta-train the learning-rate controller on lr_control.meta_train_tasks -> results/lr_meta/controller/ (resumable).

Usage: python scripts/lr_meta.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('lr_meta', sys.argv[1:]))
