"""Stage sweep: grid + random search of one task -> its sweep table (resumable)."""

from __future__ import annotations

from metahpo.sweep import run_sweep


def run(params, job) -> None:
    (data_dir,) = job.deps
    (out_path,) = job.outs
    run_sweep(job.key, params, data_dir, out_path)
