"""Stage metafeatures: one prepared dataset -> its meta-features JSON."""

from __future__ import annotations

from metahpo.io import write_json
from metahpo.metafeatures import compute_metafeatures


def run(params, job) -> None:
    (data_dir,) = job.deps
    (out_path,) = job.outs
    write_json(out_path, compute_metafeatures(data_dir, params.metafeatures, params.seed))
