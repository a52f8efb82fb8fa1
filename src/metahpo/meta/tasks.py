"""One family's candidate grid and one task's sweep, lined up candidate by candidate.

Every method ranks candidates of the family's seed grid, so a recommendation can always be looked
up in a held-out task's grid rows: its validation score, test score and seconds are known. Scores
are the family's primary metric (``metric``: accuracy for classification, f1 for QA and NER).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from metahpo.config import Params
from metahpo.errors import MetahpoError
from metahpo.io import read_json

SWEEP_COLUMNS = ("task", "search", "state", "val_metric", "test_metric", "seconds")
DEFAULT_METRIC = "accuracy"  # sweep tables written before task types had no metric column


def _value_key(value: Any) -> float:
    # grid values go through Parquet as floats; rounding makes 0.1 and 0.1000000001 one key
    return round(float(value), 12)


@dataclass(frozen=True)
class CandidateGrid:
    """The family's seed grid in seed order (itertools.product over the space as listed)."""

    family: str
    hp_names: tuple[str, ...]
    log_scaled: tuple[bool, ...]  # per hp: encoded as log10 (sampled loguniform)
    configs: tuple[dict[str, Any], ...]
    default_config: dict[str, Any]

    @classmethod
    def from_params(cls, params: Params, family: str) -> "CandidateGrid":
        if family not in params.families:
            raise MetahpoError(
                f"family {family!r} has tasks but no entry under families; valid names: "
                + ", ".join(sorted(params.families))
            )
        spec = params.families[family]
        hp_names = tuple(spec.space)
        configs = tuple(
            dict(zip(hp_names, values)) for values in itertools.product(*(spec.space[hp].values for hp in hp_names))
        )
        return cls(
            family=family,
            hp_names=hp_names,
            log_scaled=tuple(spec.space[hp].sample == "loguniform" for hp in hp_names),
            configs=configs,
            default_config=dict(spec.default),
        )

    def __len__(self) -> int:
        return len(self.configs)

    def key(self, config: dict[str, Any]) -> tuple[float, ...]:
        return tuple(_value_key(config[hp]) for hp in self.hp_names)

    def index_of(self, config: dict[str, Any]) -> Optional[int]:
        wanted = self.key(config)
        for index, candidate in enumerate(self.configs):
            if self.key(candidate) == wanted:
                return index
        return None

    @property
    def default_index(self) -> int:
        index = self.index_of(self.default_config)
        if index is None:
            raise MetahpoError(f"families.{self.family}.default: {self.default_config} is not a grid point")
        return index

    def encode(self) -> np.ndarray:
        """(candidates, hps): log10 for loguniform hyperparameters, raw otherwise."""
        raw = np.array([[float(c[hp]) for hp in self.hp_names] for c in self.configs], dtype=float)
        for column, is_log in enumerate(self.log_scaled):
            if is_log:
                raw[:, column] = np.log10(raw[:, column])
        return raw

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "hp_names": list(self.hp_names),
            "log_scaled": list(self.log_scaled),
            "configs": [dict(c) for c in self.configs],
            "default_config": dict(self.default_config),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "CandidateGrid":
        return cls(
            family=raw["family"],
            hp_names=tuple(raw["hp_names"]),
            log_scaled=tuple(bool(x) for x in raw["log_scaled"]),
            configs=tuple(dict(c) for c in raw["configs"]),
            default_config=dict(raw["default_config"]),
        )


@dataclass
class TaskSweep:
    """A task's grid rows, one entry per candidate of its family's grid (NaN where none or failed)."""

    task: str
    dataset: str
    family: str
    metafeatures: dict[str, Optional[float]]
    present: np.ndarray  # bool: the candidate has a grid row
    ok: np.ndarray  # bool: ... and that row finished with state ok and a finite score
    metric: str  # the primary metric's name: what val_metric and test_metric measure
    val_metric: np.ndarray
    test_metric: np.ndarray
    seconds: np.ndarray
    normalised: np.ndarray  # (s - min) / (max - min); failed and missing count as the worst (0)
    spread: float  # grid best - grid worst (0 when every ok row scored the same)
    grid_runs: int
    grid_seconds: float

    @property
    def best_index(self) -> Optional[int]:
        if not self.ok.any():
            return None
        return int(np.nanargmax(np.where(self.ok, self.val_metric, -np.inf)))

    def regret(self, indices: list[int]) -> float:
        """Normalised regret of the best of ``indices``: (best - found) / (best - worst)."""
        if self.spread == 0:
            return 0.0
        return float(1.0 - max(self.normalised[i] for i in indices))


def load_metafeatures(metafeatures_dir: str | Path, dataset: str) -> dict[str, Optional[float]]:
    path = Path(metafeatures_dir) / f"{dataset}.json"
    if not path.is_file():
        raise MetahpoError(f"meta-features {path} not found; run the metafeatures stage for {dataset!r} first")
    features = read_json(path).get("features")
    if not isinstance(features, dict):
        raise MetahpoError(f"{path}: no 'features' mapping (see docs/ARCHITECTURE.md)")
    return features


def load_task_sweep(
    params: Params, task: str, grid: CandidateGrid, sweep_dir: str | Path, metafeatures_dir: str | Path
) -> TaskSweep:
    path = Path(sweep_dir) / f"{task}.parquet"
    if not path.is_file():
        raise MetahpoError(f"sweep table {path} not found; run the sweep stage for task {task!r} first")
    table = pd.read_parquet(path)
    hp_columns = [f"hp.{hp}" for hp in grid.hp_names]
    missing = [c for c in (*SWEEP_COLUMNS, *hp_columns) if c not in table.columns]
    if missing:
        raise MetahpoError(
            f"{path} lacks columns {missing}; it does not match families.{grid.family}.space — rerun the sweep"
        )
    rows = table[table["search"] == "grid"]

    n = len(grid)
    present = np.zeros(n, dtype=bool)
    ok = np.zeros(n, dtype=bool)
    columns = {name: np.full(n, np.nan) for name in ("val_metric", "test_metric", "seconds")}
    index_by_key = {grid.key(c): i for i, c in enumerate(grid.configs)}
    for record in rows.to_dict("records"):
        key = tuple(_value_key(record[c]) for c in hp_columns)
        index = index_by_key.get(key)
        if index is None or present[index]:
            continue  # a config outside today's grid, or a duplicate: the first row counts
        present[index] = True
        for name, values in columns.items():
            value = record[name]
            values[index] = np.nan if value is None else float(value)
        ok[index] = record["state"] == "ok" and np.isfinite(columns["val_metric"][index])

    scores = columns["val_metric"]
    if ok.any():
        best, worst = float(np.max(scores[ok])), float(np.min(scores[ok]))
    else:
        best = worst = 0.0
    spread = best - worst
    normalised = np.zeros(n)
    if spread > 0:
        normalised[ok] = (scores[ok] - worst) / spread

    dataset = params.tasks[task].dataset
    return TaskSweep(
        task=task,
        dataset=dataset,
        family=grid.family,
        metafeatures=load_metafeatures(metafeatures_dir, dataset),
        present=present,
        ok=ok,
        metric=metric_name(table),
        val_metric=scores,
        test_metric=columns["test_metric"],
        seconds=columns["seconds"],
        normalised=normalised,
        spread=spread,
        grid_runs=int(len(rows)),
        grid_seconds=float(np.nansum(rows["seconds"].to_numpy(dtype=float))),
    )


def metric_name(table: pd.DataFrame) -> str:
    """The primary metric a sweep table's scores measure: its ``metric`` column, else accuracy."""
    if "metric" not in table.columns:
        return DEFAULT_METRIC
    names = [str(name) for name in table["metric"].dropna().unique() if str(name)]
    return names[0] if names else DEFAULT_METRIC


def configs_json(grid: CandidateGrid, indices: list[int]) -> str:
    return json.dumps([grid.configs[i] for i in indices], sort_keys=True)
