"""Stage metafeatures: meta-features of one dataset -> results/metafeatures/DATASET.json.

Usage: python scripts/metafeatures.py DATASET [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('metafeatures', sys.argv[1:]))
