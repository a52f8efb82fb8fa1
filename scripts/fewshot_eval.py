"""Stage fewshot_eval: every few-shot method on the same meta-test episodes, step by step -> results/fewshot/.

Usage: python scripts/fewshot_eval.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('fewshot_eval', sys.argv[1:]))
