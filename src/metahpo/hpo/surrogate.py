"""The one surrogate over prior tasks: a regressor on ``[meta-features, encoded configuration]`` ->
normalised score (``metadataset.normalised_scores``: 1 - regret, failed rows 0).

Fitted on the prior tasks' own pools (``TaskData``), it scores any pool in the same encoding. Two
callers, one fitting function: the ``zero_shot`` strategy (and through it the warm-started SH
variants and transfer_bo's warm start) with a small fast forest, and fit_meta's ``surrogate``
ranker with the ``meta`` section's regressor (``meta.surrogate``, ``meta.n_estimators``).

Each prior task contributes at most ``rows_per_task`` rows (its best quarter of them, then a seeded
sample of the rest: a ranking is decided at the top), so a 30,000-row pool costs no more than a
54-row one beyond that bound.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from metahpo.hpo.metadataset import TaskData, normalised_scores

ROWS_PER_TASK = 2000
Regressor = Any  # a scikit-learn regressor: fit(X, y), predict(X)


def make_regressor(kind: str, n_estimators: int, seed: int, max_depth: Optional[int] = None,
                   max_samples: Optional[int] = None) -> Regressor:  # fmt: skip
    """``random_forest`` (each tree on a bootstrap of at most ``max_samples`` rows) or ``gradient_boosting``."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor  # slow import

    if kind == "random_forest":
        return RandomForestRegressor(
            n_estimators=n_estimators, max_depth=max_depth, max_samples=max_samples, random_state=seed, n_jobs=1
        )
    if kind == "gradient_boosting":
        return GradientBoostingRegressor(n_estimators=n_estimators, max_depth=max_depth or 3, random_state=seed)
    raise ValueError(f"unknown surrogate {kind!r}; valid names: random_forest, gradient_boosting")


def training_rows(values: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of one prior task to fit on: of its finite ``values``, the best ``rows // 4``, then a random sample of the rest."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) <= rows:
        return finite
    by_value = finite[np.argsort(-values[finite], kind="stable")]
    n_best = rows // 4
    rest = rng.choice(by_value[n_best:], size=rows - n_best, replace=False)
    return np.concatenate([by_value[:n_best], rest])


def inputs(task: TaskData, with_meta_features: bool) -> np.ndarray:
    """One row per configuration: the task's standardised meta-feature vector (if used), then X."""
    if not with_meta_features:
        return task.X
    meta_features = task.meta_features
    return np.hstack([np.broadcast_to(meta_features, (len(task.X), len(meta_features))), task.X])


def usable(prior: list[TaskData]) -> list[TaskData]:
    """The prior tasks with at least one finite objective (the others teach nothing)."""
    return [t for t in prior if t.y is not None and np.isfinite(t.y).any()]


def fit_surrogate(
    prior: list[TaskData],
    regressor: Callable[[int], Regressor],
    with_meta_features: bool,
    seed: int,
    rows_per_task: int = ROWS_PER_TASK,
) -> Optional[Regressor]:
    """Fit ``regressor(n_rows)`` on the prior tasks' normalised scores; None when no task is usable."""
    tasks = usable(prior)
    if not tasks:
        return None
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for task in tasks:
        scores = normalised_scores(task)
        rows = training_rows(scores, rows_per_task, rng)
        features.append(inputs(task, with_meta_features)[rows])
        labels.append(scores[rows])
    features, labels = np.vstack(features), np.concatenate(labels)
    model = regressor(len(labels))
    model.fit(features, labels)
    return model


def predict(model: Regressor, target: TaskData, with_meta_features: bool) -> np.ndarray:
    """The surrogate's normalised score of every row of ``target``'s pool."""
    return model.predict(inputs(target, with_meta_features))
