"""Stage fit_meta: the meta-models and their leave-one-task-out evaluation."""

from __future__ import annotations

from pathlib import Path

from metahpo.meta import fit_meta


def run(params, job) -> None:
    sweep_dir, metafeatures_dir = job.deps
    model_dir, _, _ = job.outs  # model/, loto.parquet, recommendations.json: one folder
    fit_meta(params, sweep_dir, metafeatures_dir, Path(model_dir).parent)
