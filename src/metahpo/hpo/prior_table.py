"""The prior tasks' normalised scores looked up on a target's pool, and the greedy portfolio over them.

The model-free transfer baselines (``average_rank`` and ``portfolio`` strategies) and fit_meta's
``portfolio`` ranker read a table, not a model: for each prior task and each configuration, the
task's normalised score (``metadataset.normalised_scores``: its best row 1, its worst and failed
rows 0, so every task weighs the same).

A target row is matched to each prior task's configuration nearest to it in the encoded space
(``TaskData.X``: every ``hp.*`` in [0, 1], log10 first where the meta-dataset says, one ``Encoding``
for all tasks). Where the pools share their configurations (LCBench, the pipeline's seed grids, the
synthetic meta-dataset) the nearest is the same configuration (distance 0); where they do not, it is
the closest one the prior task ran, so the table stays model-free at the price of reading a
neighbour's score. A prior task that ran one configuration several times contributes their mean.

``prior_curve_gains`` reads the prior tasks' learning curves the same way: how much each
configuration still gained after a given epoch (the learning-curve-aware ``lc_transfer`` strategy).
"""

from __future__ import annotations

import numpy as np

from metahpo.hpo import surrogate
from metahpo.hpo.cache import IdentityCache
from metahpo.hpo.metadataset import TaskData, normalised_scores

_table_cache = IdentityCache(size=64)


def prior_score_table(target: TaskData, prior: list[TaskData]) -> np.ndarray:
    """(usable prior tasks, target rows): each prior task's normalised score of its configuration nearest each row.

    Reads the prior tasks' objectives only; prior tasks without a finite objective are left out
    (``surrogate.usable``). Cached by the identity of the target's pool and the prior tasks: in a
    leave-one-task-out benchmark every strategy and seed on a held-out task shares one table.
    """
    usable = surrogate.usable(prior)
    return _table_cache.get((target.X, *usable), None, lambda: _lookup(target.X, usable))


def _lookup(pool: np.ndarray, prior: list[TaskData]) -> np.ndarray:
    table = np.zeros((len(prior), len(pool)))
    for row, task in enumerate(prior):
        table[row] = _nearest_mean(pool, task, normalised_scores(task)[:, None])[:, 0]
    return table


def _nearest_mean(pool: np.ndarray, task: TaskData, values: np.ndarray) -> np.ndarray:
    """(pool rows, k): per row, the mean over ``task``'s runs of its configuration nearest the row of ``values``.

    ``values`` is (task rows, k); NaN entries are left out of the mean (NaN where a configuration has none).
    """
    from scipy.spatial import cKDTree

    configs, which = np.unique(task.X, axis=0, return_inverse=True)
    which = which.reshape(-1)  # numpy 2.0 returned it with the input's shape
    finite = np.isfinite(values)
    sums, counts = np.zeros((len(configs), values.shape[1])), np.zeros((len(configs), values.shape[1]))
    np.add.at(sums, which, np.where(finite, values, 0.0))
    np.add.at(counts, which, finite)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    _, nearest = cKDTree(configs).query(pool)
    return mean[nearest]


def prior_curve_gains(target: TaskData, prior: list[TaskData], epochs: tuple[int, ...]) -> np.ndarray:
    """(prior tasks with curves, target rows, len(epochs)): final objective - curve value at each epoch.

    Of each prior task's configuration nearest each target row (as ``prior_score_table``), in the
    objective's units; an epoch past a short curve reads its last value (as the replay answers it);
    NaN where the prior task's run failed or has no curve. Cached per fold like the score table.
    """
    with_curves = [t for t in surrogate.usable(prior) if t.curves is not None]
    return _table_cache.get((target.X, *with_curves), tuple(epochs), lambda: _gains(target.X, with_curves, epochs))


def _gains(pool: np.ndarray, prior: list[TaskData], epochs: tuple[int, ...]) -> np.ndarray:
    table = np.full((len(prior), len(pool), len(epochs)), np.nan)
    epochs = np.asarray(epochs, dtype=int)  # an index even when empty (no rung below the full fidelity)
    for row, task in enumerate(prior):
        at = np.full((len(task), len(epochs)), np.nan)
        for i, curve in enumerate(task.curves):
            if len(curve):
                at[i] = np.asarray(curve, dtype=float)[np.minimum(epochs, len(curve)) - 1]
        table[row] = _nearest_mean(pool, task, task.y[:, None] - at)
    return table


def greedy_portfolio(normalised: np.ndarray, size: int) -> list[int]:
    """Greedily add the candidate that most raises the mean over tasks of the best score so far.

    ``normalised`` is (tasks, candidates). Ties go to the first candidate in column order.
    """
    n_tasks, n_candidates = normalised.shape
    portfolio: list[int] = []
    best_so_far = np.zeros(n_tasks)  # normalised scores are >= 0, so 0 is "nothing yet"
    reachable = normalised.max(axis=1) if n_candidates else best_so_far
    for _ in range(min(size, n_candidates)):
        if np.all(best_so_far >= reachable):
            # nothing can improve: every gain ties, so the rest come in column order (the same picks, no passes)
            rest = np.setdiff1d(np.arange(n_candidates), portfolio, assume_unique=True)
            return portfolio + rest[: size - len(portfolio)].tolist()
        gains = np.maximum(normalised, best_so_far[:, None]).mean(axis=0)
        gains[portfolio] = -np.inf  # never the same config twice, even when nothing improves
        pick = int(np.argmax(gains))  # argmax returns the first of equal maxima
        portfolio.append(pick)
        best_so_far = np.maximum(best_so_far, normalised[:, pick])
    return portfolio
