"""Leave-one-task-out: fit each family's meta-learners without a task, then score them on it."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from metahpo.config import Params
from metahpo.meta.methods import METHODS, FamilyMetaModel, Ranking, default_ranking
from metahpo.meta.tasks import CandidateGrid, TaskSweep, configs_json

LOTO_COLUMNS = (
    "task", "family", "method", "k", "regret", "metric", "val_metric", "test_metric", "runs", "seconds",
    "grid_runs", "grid_seconds", "grid_best_val_metric", "grid_best_test_metric", "configs", "note",
)  # fmt: skip


def _grid_best(held_out: TaskSweep) -> tuple[float, float]:
    best = held_out.best_index
    if best is None:
        return math.nan, math.nan
    return float(held_out.val_metric[best]), float(held_out.test_metric[best])


def loto_rows(
    held_out: TaskSweep, grid: CandidateGrid, method: str, ranking: Optional[Ranking], top_k: list[int], note: str
) -> list[dict[str, Any]]:
    """One row per k: the best-of-top-k regret and the top-1's held-out scores (NaN when unfitted).

    ``metric`` names the held-out task's primary metric, which val_metric and test_metric measure.
    """
    grid_best_val, grid_best_test = _grid_best(held_out)
    rows = []
    for k in top_k:
        row: dict[str, Any] = {
            "task": held_out.task,
            "family": held_out.family,
            "method": method,
            "k": int(k),
            "metric": held_out.metric,
            "grid_runs": held_out.grid_runs,
            "grid_seconds": held_out.grid_seconds,
            "grid_best_val_metric": grid_best_val,
            "grid_best_test_metric": grid_best_test,
            "note": note,
        }
        if ranking is None:
            row.update(
                regret=math.nan, val_metric=math.nan, test_metric=math.nan, runs=0, seconds=math.nan, configs="[]",
            )  # fmt: skip
        else:
            chosen = ranking.indices[:k]
            top1 = chosen[0]
            row.update(
                regret=held_out.regret(chosen),
                val_metric=float(held_out.val_metric[top1]),
                test_metric=float(held_out.test_metric[top1]),
                runs=len(chosen),
                seconds=float(np.nansum(held_out.seconds[chosen])),
                configs=configs_json(grid, chosen),
            )
        rows.append(row)
    return rows


def _recommendation(
    method: str, grid: CandidateGrid, ranking: Optional[Ranking], note: str
) -> dict[str, Any]:
    if ranking is None:  # the chosen method could not be fitted: fall back to the default config
        fallback = default_ranking(grid)
        return {
            "method": "default",
            "requested_method": method,
            "config": dict(grid.configs[fallback.indices[0]]),
            "predicted_score": None,
            "neighbors": [],
            "note": note,
        }
    return {
        "method": method,
        "config": dict(grid.configs[ranking.indices[0]]),
        "predicted_score": ranking.scores[0],
        "neighbors": list(ranking.neighbors),
    }


def leave_one_task_out(
    params: Params, grid: CandidateGrid, sweeps: list[TaskSweep]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """LOTO rows for every task of one family, and each task's recommendation from its own fold."""
    rows: list[dict[str, Any]] = []
    recommendations: dict[str, dict[str, Any]] = {}
    for held_out in sweeps:
        training = [s for s in sweeps if s.task != held_out.task]
        model = FamilyMetaModel.fit(grid, training, params.meta, params.seed) if training else None
        unfitted_note = (
            f"no other {grid.family} task to learn from; leave-one-task-out needs at least 2 tasks of a family"
        )
        rankings: dict[str, Optional[Ranking]] = {}
        for method in METHODS:
            if method == "default":
                ranking = model.rank(method, held_out.metafeatures) if model else default_ranking(grid)
                note = "the family's default config (one run whatever k)"
            elif model is None:
                ranking, note = None, unfitted_note
            else:
                ranking, note = model.rank(method, held_out.metafeatures), ""
            rankings[method] = ranking
            rows.extend(loto_rows(held_out, grid, method, ranking, params.meta.top_k, note))
        recommendations[held_out.task] = _recommendation(
            params.meta.recommend, grid, rankings[params.meta.recommend], unfitted_note
        )
    return rows, recommendations
