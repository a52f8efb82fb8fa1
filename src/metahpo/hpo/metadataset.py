"""Meta-datasets: recorded sweeps as one table, task x configuration -> objective, cost, curve.

Schema (docs/META_DATASET.md): a Parquet table with ``task``, one numeric column per hyperparameter
named ``hp.<name>``, ``objective``, optional ``cost`` (seconds of a full evaluation), optional
``curve`` (list of per-epoch objective values); the objective's direction (max or min) is given by
the caller. An optional second table has ``task`` + ``mf.<name>`` meta-features.

Inside, everything is oriented "higher is better" (a min objective is negated) and hyperparameters
are encoded to [0, 1] (log10 first where a positive hyperparameter spans two decades or more), so a
strategy never needs to know the direction or the scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from metahpo.errors import MetahpoError

HP_PREFIX = "hp."
MF_PREFIX = "mf."
REQUIRED = ("task", "objective")


@dataclass
class TaskData:
    """One task's pool of configurations. For the held-out task, y / curves / cost stay hidden (None)."""

    name: str
    X: np.ndarray  # (n, d) encoded configurations in [0, 1]
    raw: pd.DataFrame  # (n, d) the hyperparameter values as recorded
    meta_features: Optional[np.ndarray] = None  # standardised vector, or None without meta-features
    y: Optional[np.ndarray] = None  # (n,) objective, higher is better, NaN = failed
    curves: Optional[list[np.ndarray]] = None  # per-epoch objective, higher is better
    cost: Optional[np.ndarray] = None  # (n,) cost of a full evaluation
    n_epochs: int = 1  # the longest curve: the full fidelity

    def __len__(self) -> int:
        return len(self.X)

    def hidden(self) -> "TaskData":
        """The view a strategy gets of the held-out task: configurations only."""
        return TaskData(self.name, self.X, self.raw, self.meta_features, n_epochs=self.n_epochs)


@dataclass
class MetaDataset:
    tasks: dict[str, TaskData]
    hyperparameters: list[str]
    log_scale: dict[str, bool]
    direction: str = "max"
    meta_feature_names: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.tasks)


def _fail(message: str) -> None:
    raise MetahpoError(f"meta-dataset: {message} (schema: docs/META_DATASET.md)")


def from_frame(
    table: pd.DataFrame, direction: str = "max", meta_features: Optional[pd.DataFrame] = None
) -> MetaDataset:
    """Validate a meta-dataset table and build per-task pools."""
    if direction not in ("max", "min"):
        _fail(f"direction must be max or min, not {direction!r}")
    missing = [c for c in REQUIRED if c not in table.columns]
    hp_columns = [c for c in table.columns if c.startswith(HP_PREFIX)]
    if missing:
        _fail(f"missing required column(s) {missing}")
    if not hp_columns:
        _fail("no hyperparameter columns (named hp.<name>)")
    if not pd.api.types.is_numeric_dtype(table["objective"]):
        _fail(f"objective must be numeric, got dtype {table['objective'].dtype}")
    for column in hp_columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            _fail(f"{column} must be numeric (encode a categorical hyperparameter as integers)")
    # every task must be on the same search space: the same hyperparameters present
    present = table.groupby("task")[hp_columns].apply(lambda t: tuple(t.notna().all().tolist()))
    if present.nunique() > 1:
        spaces = {task: [h for h, ok in zip(hp_columns, flags) if ok] for task, flags in present.items()}
        _fail(f"tasks are on different search spaces: {spaces}")
    sign = 1.0 if direction == "max" else -1.0

    # encoding shared by all tasks, so configurations are comparable across tasks
    log_scale, lows, highs = {}, {}, {}
    for column in hp_columns:
        values = table[column].dropna().to_numpy(dtype=float)
        log_scale[column] = bool(values.min() > 0 and values.max() / values.min() >= 100)
        encoded = np.log10(values) if log_scale[column] else values
        lows[column], highs[column] = float(encoded.min()), float(encoded.max())

    mf = _meta_feature_matrix(meta_features, table["task"].unique()) if meta_features is not None else None
    tasks = {}
    for task, rows in table.groupby("task", sort=False):
        rows = rows.reset_index(drop=True)
        raw = rows[hp_columns].astype(float)
        X = np.column_stack([_encode(raw[c].to_numpy(), log_scale[c], lows[c], highs[c]) for c in hp_columns])
        y = sign * rows["objective"].to_numpy(dtype=float)
        curves = None
        if "curve" in rows.columns:
            curves = [sign * np.asarray(c, dtype=float) if c is not None else np.array([]) for c in rows["curve"]]
        cost = rows["cost"].to_numpy(dtype=float) if "cost" in rows.columns else None
        n_epochs = max((len(c) for c in curves), default=1) if curves else 1
        tasks[str(task)] = TaskData(
            name=str(task), X=X, raw=raw, meta_features=None if mf is None else mf[0].get(task),
            y=y, curves=curves, cost=cost, n_epochs=max(1, n_epochs),
        )
    return MetaDataset(tasks, hp_columns, log_scale, direction, [] if mf is None else mf[1])


def _encode(values: np.ndarray, log: bool, low: float, high: float) -> np.ndarray:
    encoded = np.log10(values.astype(float)) if log else values.astype(float)
    return (encoded - low) / (high - low) if high > low else np.zeros_like(encoded)


def _meta_feature_matrix(frame: pd.DataFrame, tasks) -> tuple[dict, list[str]]:
    if "task" not in frame.columns:
        _fail("the meta-features table needs a task column")
    names = [c for c in frame.columns if c.startswith(MF_PREFIX)]
    if not names:
        _fail("the meta-features table has no mf.<name> columns")
    frame = frame.set_index("task")
    absent = [t for t in tasks if t not in frame.index]
    if absent:
        _fail(f"meta-features missing for task(s) {absent}")
    values = frame.loc[list(tasks), names].to_numpy(dtype=float)
    # median-impute, then standardise; constant or all-missing columns carry no signal
    finite = np.isfinite(values)
    observed = finite.any(axis=0)  # an all-missing column has no median; it is dropped below as constant
    medians = np.zeros(values.shape[1])
    medians[observed] = np.nanmedian(np.where(finite, values, np.nan)[:, observed], axis=0)
    values = np.where(finite, values, medians)
    std = values.std(axis=0)
    keep = std > 0
    values = (values[:, keep] - values[:, keep].mean(axis=0)) / std[keep]
    return {t: values[i] for i, t in enumerate(tasks)}, [n for n, k in zip(names, keep) if k]


def read(path: str | Path, direction: str = "max", meta_features: Optional[str | Path] = None) -> MetaDataset:
    path = Path(path)
    if not path.is_file():
        _fail(f"{path} not found")
    table = pd.read_parquet(path)
    mf = pd.read_parquet(meta_features) if meta_features is not None else None
    return from_frame(table, direction, mf)


def from_sweeps(sweeps: list[pd.DataFrame], metafeatures: Optional[dict[str, dict]] = None) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """The pipeline's sweep tables (one family) -> a meta-dataset table (+ meta-features table).

    objective = val_metric (max); non-ok trials keep a NaN objective (failed, never the best);
    cost = seconds; curve = per-epoch validation metric.
    """
    rows = []
    for sweep in sweeps:
        hp = [c for c in sweep.columns if c.startswith(HP_PREFIX)]
        frame = sweep[["task", *hp]].copy()
        frame["objective"] = np.where(sweep["state"] == "ok", sweep["val_metric"], np.nan)
        frame["cost"] = sweep["seconds"].astype(float)
        frame["curve"] = [list(map(float, c)) if c is not None else [] for c in sweep["curve_val_metric"]]
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    mf_table = None
    if metafeatures:
        records = []
        for task, features in metafeatures.items():
            records.append({"task": task, **{f"{MF_PREFIX}{k}": (math.nan if v is None else float(v)) for k, v in features.items()}})
        mf_table = pd.DataFrame.from_records(records)
    return table, mf_table
