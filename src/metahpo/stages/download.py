"""Stage download: one dataset of params.datasets -> its DatasetDict folder."""

from __future__ import annotations

from metahpo.data.prepare import download_dataset


def run(params, job) -> None:
    (out_dir,) = job.outs
    download_dataset(job.key, params, out_dir)
