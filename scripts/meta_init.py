"""Stage meta_init: meta-train each few-shot method's initialization -> results/meta_init/inits/ (resumable).

Usage: python scripts/meta_init.py [--params PARAMS]
"""
import sys

from metahpo.stages import main

sys.exit(main('meta_init', sys.argv[1:]))
