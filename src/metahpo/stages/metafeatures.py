"""Stage metafeatures: one prepared dataset -> its meta-features JSON."""

from __future__ import annotations

from metahpo.metafeatures import write_metafeatures


def run(params, job) -> None:
    (data_dir,) = job.deps
    (out_path,) = job.outs
    write_metafeatures(data_dir, out_path, params)
