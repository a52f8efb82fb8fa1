"""The pipeline's sweep tables as meta-datasets, one ``families`` entry at a time.

fit_meta, the benchmark stage and the tune stage all read recorded sweeps through here, into the one
representation of ``metahpo.hpo.metadataset`` (exported with ``metadataset.from_sweeps``,
docs/META_DATASET.md). Meta-features come from each task's dataset
(results/metafeatures/<dataset>.json). A stage passes the tasks' datasets and the family's space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import pandas as pd

from metahpo.errors import MetahpoError
from metahpo.hpo.metadataset import HP_PREFIX, MetaDataset, from_frame, from_sweeps
from metahpo.search_space import declared_log_scale
from metahpo.io import read_json


def read_sweep(sweep_dir: str | Path, task: str) -> pd.DataFrame:
    path = Path(sweep_dir) / f"{task}.parquet"
    if not path.is_file():
        raise MetahpoError(f"sweep table {path} not found; run the sweep stage for task {task!r} first")
    return pd.read_parquet(path)


def task_metafeatures(
    datasets: Mapping[str, str], metafeatures_dir: str | Path, required: bool = False
) -> Optional[dict[str, dict]]:
    """task -> its dataset's ``features`` (``datasets``: task -> dataset).

    A missing file: an error naming it when ``required`` (fit_meta's rankers need them), else None for
    all (the strategies then go without meta-features).
    """
    features = {}
    for task, dataset in datasets.items():
        path = Path(metafeatures_dir) / f"{dataset}.json"
        if not path.is_file():
            if required:
                raise MetahpoError(f"meta-features {path} not found; run the metafeatures stage for {dataset!r} first")
            return None
        document = read_json(path).get("features")
        if required and not isinstance(document, dict):
            raise MetahpoError(f"{path}: no 'features' mapping (see docs/ARCHITECTURE.md)")
        features[task] = document or {}
    return features


def family_frames(
    datasets: Mapping[str, str],
    sweep_dir: str | Path,
    metafeatures_dir: str | Path,
    search: Optional[str] = None,
    require_metafeatures: bool = False,
) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """(meta-dataset table, meta-features table or None) of these tasks' sweeps (``datasets``: task -> dataset)."""
    sweeps = [read_sweep(sweep_dir, task) for task in datasets]
    return from_sweeps(sweeps, task_metafeatures(datasets, metafeatures_dir, require_metafeatures), search)


def family_log_scale(space: Mapping[str, Any]) -> dict[str, bool]:
    """``hp.<name>`` -> the log flag a ``families.<entry>.space`` declares."""
    return {f"{HP_PREFIX}{name}": log for name, log in declared_log_scale(space).items()}


def family_metadataset(datasets: Mapping[str, str], space: Mapping[str, Any], sweep_dir: str | Path,
                       metafeatures_dir: str | Path, **options: Any) -> MetaDataset:  # fmt: skip
    """These tasks' sweeps as one meta-dataset, in their family's declared encoding (direction max).

    ``datasets``: task -> dataset; ``space``: the family's ``families.<entry>.space``; ``options``:
    ``search`` and ``require_metafeatures`` of ``family_frames``.
    """
    table, mf_table = family_frames(datasets, sweep_dir, metafeatures_dir, **options)
    return from_frame(table, "max", mf_table, family_log_scale(space))
