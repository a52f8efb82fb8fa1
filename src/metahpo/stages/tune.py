"""Stage tune: real HPO of one task, the transfer strategy next to its baseline."""

from __future__ import annotations

from metahpo.tune import run_tune


def run(params, job) -> None:
    data_dir, sweep_dir, metafeatures_dir = job.deps
    (out_path,) = job.outs
    run_tune(job.key, params, data_dir, sweep_dir, metafeatures_dir, out_path)
