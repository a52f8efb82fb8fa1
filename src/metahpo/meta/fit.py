"""fit_meta: leave-one-task-out evaluation, per-task recommendations and the final meta-models."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from metahpo.config import Params
from metahpo.io import atomic_dir, write_json, write_parquet
from metahpo.meta.loto import LOTO_COLUMNS, leave_one_task_out
from metahpo.meta.methods import FamilyMetaModel
from metahpo.meta.persist import save_meta_models
from metahpo.meta.tasks import CandidateGrid, TaskSweep, load_task_sweep


def _families_in_task_order(params: Params) -> list[str]:
    return list(dict.fromkeys(spec.family for spec in params.tasks.values()))


def fit_meta(
    params: Params, sweep_dir: str | Path, metafeatures_dir: str | Path, out_dir: str | Path
) -> dict[str, Any]:
    """Write ``loto.parquet``, ``recommendations.json`` and ``model/`` under ``out_dir``; return a summary."""
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    recommendations: dict[str, dict[str, Any]] = {}
    final_models: dict[str, FamilyMetaModel] = {}
    for family in _families_in_task_order(params):
        grid = CandidateGrid.from_params(params, family)
        sweeps: list[TaskSweep] = [
            load_task_sweep(params, task, grid, sweep_dir, metafeatures_dir) for task in params.tasks_of_family(family)
        ]
        family_rows, family_recommendations = leave_one_task_out(params, grid, sweeps)
        rows.extend(family_rows)
        recommendations.update(family_recommendations)
        final_models[family] = FamilyMetaModel.fit(grid, sweeps, params.meta, params.seed)

    loto = pd.DataFrame(rows, columns=list(LOTO_COLUMNS))
    loto = loto.astype({"k": "int64", "runs": "int64", "grid_runs": "int64"})
    write_parquet(out_dir / "loto.parquet", loto)
    write_json(out_dir / "recommendations.json", recommendations)
    with atomic_dir(out_dir / "model") as model_dir:
        save_meta_models(final_models, model_dir, params.seed)
    return summarise(loto, final_models, out_dir)


def summarise(loto: pd.DataFrame, models: dict[str, FamilyMetaModel], out_dir: Path) -> dict[str, Any]:
    """Mean LOTO regret per method and k (NaN rows, i.e. unfitted folds, left out of the mean)."""
    mean_regret: dict[str, dict[str, float | None]] = {}
    for (method, k), group in loto.groupby(["method", "k"], sort=True):
        value = group["regret"].mean()
        mean_regret.setdefault(method, {})[str(k)] = None if math.isnan(value) else float(value)
    return {
        "tasks": int(loto["task"].nunique()),
        "families": {family: model.task_names for family, model in models.items()},
        "mean_regret": mean_regret,
        "loto": str(out_dir / "loto.parquet"),
        "recommendations": str(out_dir / "recommendations.json"),
        "model_dir": str(out_dir / "model"),
    }
