"""``zero_shot``: rank the pool by a meta-model fitted on the prior tasks; ask in that order, no feedback.

The meta-model (``prior_scores``, also used by the warm-started SH variants and importable by
transfer BO) is a random forest on ``[meta_features, X] -> normalised objective``: each prior task's
objective is rescaled to [0, 1] ((y - min) / (max - min), failed rows dropped) so that every task
weighs the same whatever its metric's range. Meta-features are used only when the target and every
prior task have them; without them the forest sees X alone and predicts the average normalised
performance of a configuration across the prior tasks.

The forest depends on the prior tasks alone (a fixed seed, ``PRIOR_SEED``), so its scores of a pool are
cached (``metahpo.hpo.cache``): in a leave-one-task-out benchmark zero_shot, the warm-started SH
variants and transfer_bo share one fit per held-out task, whatever the strategy and seed.

Speed: each prior task contributes at most ``rows_per_task`` rows (its best quarter of them, then a
seeded sample of the rest: the ranking is decided at the top), and each tree is fitted on a bootstrap
of at most 2,000 of them (depth <= 10), so fitting takes about a second of CPU and predicting 30,000
candidates a fraction of one.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.cache import IdentityCache
from metahpo.hpo.metadataset import TaskData
from metahpo.hpo.strategies.grid import FixedOrder

ROWS_PER_TASK = 2000
N_TREES = 100
TREE_ROWS = 2000
PRIOR_SEED = 0  # the meta-model depends on the prior tasks alone: one fit serves every strategy and seed
_scores_cache = IdentityCache(size=64)


def _with_meta_features(X: np.ndarray, meta_features: np.ndarray | None) -> np.ndarray:
    if meta_features is None:
        return X
    return np.hstack([np.broadcast_to(meta_features, (len(X), len(meta_features))), X])


def training_rows(values: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of one prior task to fit on: of its finite ``values``, the best ``rows // 4``, then a random sample of the rest."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) <= rows:
        return finite
    by_value = finite[np.argsort(-values[finite], kind="stable")]
    n_best = rows // 4
    rest = rng.choice(by_value[n_best:], size=rows - n_best, replace=False)
    return np.concatenate([by_value[:n_best], rest])


def prior_scores(
    target: TaskData, prior: list[TaskData], rows_per_task: int = ROWS_PER_TASK, n_trees: int = N_TREES
) -> np.ndarray:
    """Predicted normalised objective (higher is better, about [0, 1]) of every row of ``target``.

    Fitted on the prior tasks only (their y); all zeros when no prior task has a finite objective.
    Cached by the identity of the target's pool and the prior tasks.
    """
    usable = [t for t in prior if t.y is not None and np.isfinite(t.y).any()]
    meta_features = None if target.meta_features is None else target.meta_features.tobytes()
    return _scores_cache.get(
        (target.X, *usable), (meta_features, rows_per_task, n_trees),
        lambda: _fit_and_score(target, usable, rows_per_task, n_trees),
    )


def _fit_and_score(target: TaskData, usable: list[TaskData], rows_per_task: int, n_trees: int) -> np.ndarray:
    rng = np.random.default_rng(PRIOR_SEED)
    use_meta_features = target.meta_features is not None and all(t.meta_features is not None for t in usable)
    features, labels = [], []
    for task in usable:
        rows = training_rows(task.y, rows_per_task, rng)
        y = task.y[rows]
        span = y.max() - y.min()
        features.append(_with_meta_features(task.X[rows], task.meta_features if use_meta_features else None))
        labels.append((y - y.min()) / span if span > 0 else np.full(len(y), 0.5))
    if not features:
        return np.zeros(len(target))
    features, labels = np.vstack(features), np.concatenate(labels)
    # each tree sees a bootstrap of at most TREE_ROWS rows and stops at depth 10: the forest as a whole
    # still covers every row, and fitting / predicting stay well under a second
    forest = RandomForestRegressor(
        n_estimators=n_trees, max_samples=min(TREE_ROWS, len(labels)), max_depth=10, min_samples_leaf=1,
        random_state=PRIOR_SEED, n_jobs=1,
    )
    forest.fit(features, labels)
    return forest.predict(_with_meta_features(target.X, target.meta_features if use_meta_features else None))


def prior_order(target: TaskData, prior: list[TaskData], seed: int) -> np.ndarray:
    """The pool's rows, best predicted first; ties (e.g. no prior at all) in a seeded random order."""
    scores = prior_scores(target, prior)
    tie_break = np.random.default_rng(seed).permutation(len(target))
    return np.lexsort((tie_break, -scores))


class ZeroShot(FixedOrder):
    name = "zero_shot"
    uses_prior = True

    def order(self) -> np.ndarray:
        return prior_order(self.target, self.prior, self.seed)


STRATEGIES.register(ZeroShot.name, ZeroShot)
