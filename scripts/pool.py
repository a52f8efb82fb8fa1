"""Stage pool: train the model pool's members on their source datasets (checkpoints as shipped) -> results/pool/members/.

Usage: python scripts/pool.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('pool', sys.argv[1:]))
