"""Stage benchmark: every HPO strategy replayed leave-one-task-out on the pipeline's own sweeps."""

from __future__ import annotations

import sys
from pathlib import Path

from metahpo.benchmark import run_benchmark


def run(params, job) -> None:
    sweep_dir, metafeatures_dir = job.deps
    run_benchmark(params, sweep_dir, metafeatures_dir, Path(job.outs[0]).parent, progress=sys.stderr.isatty())
