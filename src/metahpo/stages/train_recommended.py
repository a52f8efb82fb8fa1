"""Stage train_recommended: one task's recommended config trained for the full budget."""

from __future__ import annotations

from pathlib import Path

from metahpo.train_recommended import train_recommended


def run(params, job) -> None:
    data_dir, recommendations = job.deps
    train_recommended(job.key, params, data_dir, recommendations, Path(job.outs[0]).parent)
