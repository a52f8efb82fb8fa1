"""Leave-one-task-out: fit each family's rankers without a task, then score them on it.

The held-out task is a ``TaskData`` of the family's meta-dataset (its grid rows); a ranking's
regret is ``metadataset.pool_regret``, the replay engine's, of the best of its top k. Each row also
carries the top-1's predicted normalised score with its calibrated interval, its actual normalised
score on the held-out task (so the interval's coverage can be checked) and, for the safe rule,
whether it fell back to the default and why.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from metahpo.hpo.metadataset import MetaDataset, TaskData, pool_regret
from metahpo.meta.candidates import CandidateGrid, configs_json
from metahpo.meta.rankers import METHODS, FamilyMetaModel, Ranking, default_ranking, fallback_ranking

LOTO_COLUMNS = (
    "task", "family", "method", "k", "regret", "metric", "val_metric", "test_metric", "runs", "seconds",
    "grid_runs", "grid_seconds", "grid_best_val_metric", "grid_best_test_metric", "configs", "note",
    "predicted", "lower", "upper", "fallback", "reason",
)  # fmt: skip
DEFAULT_METRIC = "accuracy"  # sweep tables written before task types had no metric column


def _at(values: Optional[np.ndarray], row: int) -> float:
    return math.nan if values is None or row < 0 else float(values[row])


def _number(value: Optional[float]) -> float:
    return math.nan if value is None else float(value)


def loto_rows(
    held_out: TaskData, grid: CandidateGrid, method: str, ranking: Optional[Ranking], top_k: list[int], note: str
) -> list[dict[str, Any]]:
    """One row per k: the best-of-top-k regret and the top-1's held-out scores (NaN when unfitted).

    ``metric`` names the held-out task's primary metric, which val_metric and test_metric measure.
    A candidate the held-out task never ran counts as its worst (regret 1). predicted / lower /
    upper: the top-1's predicted normalised score and interval (NaN when the method has none).
    """
    rows_of = grid.rows_in(held_out)  # candidate -> the held-out task's grid row, -1 if none
    if np.isfinite(held_out.y).any():
        regret = np.append(pool_regret(held_out), 1.0)  # index -1: not run
        best = int(np.argmin(regret[:-1]))
    else:  # every grid run failed: there is no scale to measure regret on
        regret, best = np.full(len(held_out) + 1, np.nan), -1
        note = f"every grid run of {held_out.name} failed: no regret to measure"
    grid_best_val, grid_best_test = _at(held_out.y, best), _at(held_out.test, best)
    rows = []
    for k in top_k:
        row: dict[str, Any] = {
            "task": held_out.name,
            "family": grid.family,
            "method": method,
            "k": int(k),
            "metric": held_out.metric or DEFAULT_METRIC,
            "grid_runs": len(held_out),
            "grid_seconds": float(np.nansum(held_out.cost)),
            "grid_best_val_metric": grid_best_val,
            "grid_best_test_metric": grid_best_test,
            "note": note,
        }
        if ranking is None:
            row.update(
                regret=math.nan, val_metric=math.nan, test_metric=math.nan, runs=0, seconds=math.nan, configs="[]",
                predicted=math.nan, lower=math.nan, upper=math.nan, fallback="", reason="",
            )  # fmt: skip
        else:
            chosen = ranking.indices[:k]
            run = rows_of[chosen]
            row.update(
                regret=float(regret[run].min()),
                val_metric=_at(held_out.y, run[0]),
                test_metric=_at(held_out.test, run[0]),
                runs=len(chosen),
                seconds=float(np.nansum(held_out.cost[run[run >= 0]])),
                configs=configs_json(grid, chosen),
                predicted=_number(ranking.scores[0]),
                lower=_number(ranking.interval(0)[0]),
                upper=_number(ranking.interval(0)[1]),
                fallback=ranking.fallback or "",
                reason=ranking.reason,
            )
        rows.append(row)
    return rows


def _recommendation(method: str, grid: CandidateGrid, ranking: Optional[Ranking], note: str) -> dict[str, Any]:
    if ranking is None:  # the chosen method could not be fitted: fall back to the default config
        return {
            "method": "default",
            "requested_method": method,
            "config": dict(grid.configs[default_ranking(grid).indices[0]]),
            "predicted_score": None,
            "interval": None,
            "fallback": "default",
            "reason": note,
            "neighbors": [],
            "note": note,
        }
    lower, upper = ranking.interval(0)
    return {
        "method": method,
        "config": dict(grid.configs[ranking.indices[0]]),
        "predicted_score": ranking.scores[0],
        "interval": None if lower is None else [lower, upper],
        "fallback": ranking.fallback,
        "reason": ranking.reason,
        "neighbors": list(ranking.neighbors),
    }


def leave_one_task_out(
    grid: CandidateGrid, data: MetaDataset, meta: Any, seed: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """LOTO rows for every task of one family's meta-dataset, and each task's recommendation from its own fold.

    ``meta``: the params ``meta`` section (top_k, recommend and the rankers' settings).
    """
    rows: list[dict[str, Any]] = []
    recommendations: dict[str, dict[str, Any]] = {}
    unfitted_note = f"no other {grid.family} task to learn from; leave-one-task-out needs at least 2 tasks of a family"
    for name, held_out in data.tasks.items():
        training = data.without(name)  # the scaler refitted on the training tasks alone
        model = FamilyMetaModel.fit(grid, training, meta, seed) if training.tasks else None
        rankings: dict[str, Optional[Ranking]] = {}
        for method in METHODS:
            if method == "default":
                ranking = model.rank(method, held_out.mf_raw) if model else default_ranking(grid)
                note = "the family's default config (one run whatever k)"
            elif method == "safe" and model is None:  # the safe rule always has an answer: the default
                ranking, note = fallback_ranking(grid, meta.min_prior_tasks), ""
            elif model is None:
                ranking, note = None, unfitted_note
            else:
                ranking, note = model.rank(method, held_out.mf_raw), ""
            rankings[method] = ranking
            rows.extend(loto_rows(held_out, grid, method, ranking, meta.top_k, note))
        recommendations[name] = _recommendation(meta.recommend, grid, rankings[meta.recommend], unfitted_note)
    return rows, recommendations
