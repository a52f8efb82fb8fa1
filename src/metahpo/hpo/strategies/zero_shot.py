"""``zero_shot``: rank the pool by a meta-model fitted on the prior tasks; ask in that order, no feedback.

The meta-model (``prior_scores``, also used by the warm-started SH variants and transfer BO) is the
one surrogate of ``metahpo.hpo.surrogate`` (shared with fit_meta's ``surrogate`` ranker): a random
forest on ``[meta_features, X] -> normalised score`` (1 - regret: each prior task's best row 1, its
worst and its failed rows 0, so every task weighs the same whatever its metric's range).
Meta-features are used only when the target and every prior task have them; without them the forest
sees X alone and predicts the average normalised performance of a configuration across the prior tasks.

The forest depends on the prior tasks alone (a fixed seed, ``PRIOR_SEED``), so its scores of a pool are
cached (``metahpo.hpo.cache``): in a leave-one-task-out benchmark zero_shot, the warm-started SH
variants and transfer_bo share one fit per held-out task, whatever the strategy and seed.

Speed: each prior task contributes at most ``surrogate.ROWS_PER_TASK`` rows, and each tree is fitted
on a bootstrap of at most 2,000 of them (depth <= 10), so fitting takes about a second of CPU and
predicting 30,000 candidates a fraction of one.
"""

from __future__ import annotations

import numpy as np

from metahpo.hpo import surrogate
from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.cache import IdentityCache
from metahpo.hpo.metadataset import TaskData
from metahpo.hpo.strategies.grid import FixedOrder, best_first

N_TREES = 100
TREE_ROWS = 2000
PRIOR_SEED = 0  # the meta-model depends on the prior tasks alone: one fit serves every strategy and seed
_scores_cache = IdentityCache(size=64)


def prior_scores(
    target: TaskData, prior: list[TaskData], rows_per_task: int = surrogate.ROWS_PER_TASK, n_trees: int = N_TREES
) -> np.ndarray:
    """Predicted normalised score (higher is better, about [0, 1]) of every row of ``target``.

    Fitted on the prior tasks only (their y); all zeros when no prior task has a finite objective.
    Cached by the identity of the target's pool and the prior tasks.
    """
    usable = surrogate.usable(prior)
    meta_features = None if target.meta_features is None else target.meta_features.tobytes()
    return _scores_cache.get(
        (target.X, *usable), (meta_features, rows_per_task, n_trees),
        lambda: _fit_and_score(target, usable, rows_per_task, n_trees),
    )


def _forest(n_trees: int):
    # each tree sees a bootstrap of at most TREE_ROWS rows and stops at depth 10: the forest as a whole
    # still covers every row, and fitting / predicting stay well under a second
    return lambda n_rows: surrogate.make_regressor(
        "random_forest", n_trees, PRIOR_SEED, max_depth=10, max_samples=min(TREE_ROWS, n_rows)
    )


def _fit_and_score(target: TaskData, usable: list[TaskData], rows_per_task: int, n_trees: int) -> np.ndarray:
    with_mf = target.meta_features is not None and all(t.meta_features is not None for t in usable)
    model = surrogate.fit_surrogate(usable, _forest(n_trees), with_mf, PRIOR_SEED, rows_per_task)
    if model is None:
        return np.zeros(len(target))
    return surrogate.predict(model, target, with_mf)


def prior_order(target: TaskData, prior: list[TaskData], seed: int) -> np.ndarray:
    """The pool's rows, best predicted first; ties (e.g. no prior at all) in a seeded random order."""
    return best_first(prior_scores(target, prior), seed)


class ZeroShot(FixedOrder):
    name = "zero_shot"
    uses_prior = True
    without_prior = "a seeded random order"

    def order(self) -> np.ndarray:
        return prior_order(self.target, self.prior, self.seed)


STRATEGIES.register(ZeroShot.name, ZeroShot)
