"""Stage fit_meta: leave-one-task-out evaluation, per-task recommendations and the final meta-models.

Per family, the sweeps' grid rows are read once into the family's meta-dataset
(``metahpo.hpo.sweep_tables.family_metadataset``); the rankers, the LOTO regrets and the final models all
read that one representation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from metahpo.errors import MetahpoError
from metahpo.search_space import grid_configs
from metahpo.hpo.sweep_tables import family_metadataset
from metahpo.stages.shared import family_datasets
from metahpo.io import atomic_dir, write_json, write_parquet
from metahpo.meta.candidates import CandidateGrid
from metahpo.meta.loto import LOTO_COLUMNS, leave_one_task_out
from metahpo.meta.persist import save_meta_models
from metahpo.meta.rankers import FamilyMetaModel


def fit_meta(params, sweep_dir: str | Path, metafeatures_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write ``loto.parquet``, ``recommendations.json`` and ``model/`` under ``out_dir``; return a summary."""
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    recommendations: dict[str, dict[str, Any]] = {}
    final_models: dict[str, FamilyMetaModel] = {}
    for family in dict.fromkeys(spec.family for spec in params.tasks.values()):
        if family not in params.families:
            raise MetahpoError(
                f"family {family!r} has tasks but no entry under families; valid names: "
                + ", ".join(sorted(params.families))
            )
        tasks = params.tasks_of_family(family)
        data = family_metadataset(
            family_datasets(params, family), params.families[family].space, sweep_dir, metafeatures_dir,
            search="grid", require_metafeatures=True,
        )  # fmt: skip
        without_grid = [t for t in tasks if t not in data.tasks]
        if without_grid:
            raise MetahpoError(f"sweep tables of {without_grid} have no grid rows; fit_meta ranks the grid (sweep.grid)")
        spec = params.families[family]
        grid = CandidateGrid.build(family, grid_configs(spec.space), spec.default, data.encoding)
        recorded = sorted(data.hyperparameters)
        if recorded != sorted(f"hp.{hp}" for hp in grid.hp_names):
            raise MetahpoError(
                f"the {family} sweep tables have hyperparameters {recorded}; they do not match "
                f"families.{family}.space ({', '.join(grid.hp_names)}) — rerun the sweep"
            )
        family_rows, family_recommendations = leave_one_task_out(grid, data, params.meta, params.seed)
        rows.extend(family_rows)
        recommendations.update(family_recommendations)
        final_models[family] = FamilyMetaModel.fit(grid, data, params.meta, params.seed)

    loto = pd.DataFrame(rows, columns=list(LOTO_COLUMNS))
    loto = loto.astype({"k": "int64", "runs": "int64", "grid_runs": "int64"})
    write_parquet(out_dir / "loto.parquet", loto)
    write_json(out_dir / "recommendations.json", recommendations)
    with atomic_dir(out_dir / "model") as model_dir:
        save_meta_models(final_models, model_dir, params.seed)
    return summarise(loto, final_models, out_dir)


def summarise(loto: pd.DataFrame, models: dict[str, FamilyMetaModel], out_dir: Path) -> dict[str, Any]:
    """Mean LOTO regret per method and k (NaN rows, i.e. unfitted folds, left out of the mean), and the
    held-out tasks on which the safe rule fell back to the default, with its reason."""
    mean_regret: dict[str, dict[str, float | None]] = {}
    for (method, k), group in loto.groupby(["method", "k"], sort=True):
        value = group["regret"].mean()
        mean_regret.setdefault(method, {})[str(k)] = None if math.isnan(value) else float(value)
    safe = loto[(loto["method"] == "safe") & (loto["k"] == loto["k"].min()) & (loto["fallback"] != "")]
    return {
        "tasks": int(loto["task"].nunique()),
        "families": {family: model.task_names for family, model in models.items()},
        "mean_regret": mean_regret,
        "safe_fallbacks": dict(zip(safe["task"], safe["reason"])),  # held-out task -> why the default came first
        "loto": str(out_dir / "loto.parquet"),
        "recommendations": str(out_dir / "recommendations.json"),
        "model_dir": str(out_dir / "model"),
    }


def run(params, job) -> None:
    sweep_dir, metafeatures_dir = job.deps
    model_dir, _, _ = job.outs  # model/, loto.parquet, recommendations.json: one folder
    fit_meta(params, sweep_dir, metafeatures_dir, Path(model_dir).parent)
