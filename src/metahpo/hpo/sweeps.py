"""The pipeline's sweep tables as meta-datasets, one ``families`` entry at a time.

The benchmark stage replays strategies on them; the tune stage takes its prior tasks from them.
Meta-features come from each task's dataset (results/metafeatures/<dataset>.json); the table is
exported with ``metadataset.from_sweeps`` (docs/META_DATASET.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from metahpo.config import Params
from metahpo.errors import MetahpoError
from metahpo.hpo.metadataset import from_sweeps
from metahpo.io import read_json


def read_sweep(sweep_dir: str | Path, task: str) -> pd.DataFrame:
    path = Path(sweep_dir) / f"{task}.parquet"
    if not path.is_file():
        raise MetahpoError(f"sweep table {path} not found; run the sweep stage for task {task!r} first")
    return pd.read_parquet(path)


def task_metafeatures(params: Params, tasks: list[str], metafeatures_dir: str | Path) -> Optional[dict[str, dict]]:
    """task -> its dataset's meta-features; None when any of them is missing (strategies then go without)."""
    features = {}
    for task in tasks:
        path = Path(metafeatures_dir) / f"{params.task_dataset(task)}.json"
        if not path.is_file():
            return None
        features[task] = read_json(path).get("features") or {}
    return features


def family_frames(
    params: Params, tasks: list[str], sweep_dir: str | Path, metafeatures_dir: str | Path
) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """(meta-dataset table, meta-features table or None) of these tasks' sweeps (one families entry)."""
    sweeps = [read_sweep(sweep_dir, task) for task in tasks]
    return from_sweeps(sweeps, task_metafeatures(params, tasks, metafeatures_dir))
