"""Stage pool_finetune: ground truth: every pool member fine-tuned on every target -> results/pool_finetune/ (resumable).

Usage: python scripts/pool_finetune.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('pool_finetune', sys.argv[1:]))
