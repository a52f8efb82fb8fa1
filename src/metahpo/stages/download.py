"""Stage download: one dataset of params.datasets -> its DatasetDict folder."""

from __future__ import annotations

import os
from typing import Any

from metahpo.data.prepare import prepare_dataset
from metahpo.errors import DataError


def download_dataset(name: str, params, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write dataset ``name`` of params.datasets to ``out_dir`` (atomically); return its info dict."""
    if name not in params.datasets:
        raise DataError(f"dataset {name!r} is not under datasets in params; valid names: {', '.join(sorted(params.datasets))}")
    return prepare_dataset(name, params.datasets[name], params.download, params.seed, out_dir)


def run(params, job) -> None:
    (out_dir,) = job.outs
    download_dataset(job.key, params, out_dir)
