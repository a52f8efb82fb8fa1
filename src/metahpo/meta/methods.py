"""The meta-learners of one family, fitted on a set of training tasks.

- surrogate: a scikit-learn regressor on [meta-features, config encoding] -> normalised score;
- nearest: the best configs of the nearest training tasks in meta-feature space;
- portfolio: a greedy zero-shot portfolio, the same for every new task;
- default: the family's default config from params.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from metahpo.config import MetaParams
from metahpo.errors import MetahpoError
from metahpo.meta.features import FeatureScaler
from metahpo.meta.tasks import CandidateGrid, TaskSweep

METHODS = ("surrogate", "nearest", "portfolio", "default")


@dataclass
class Ranking:
    """Candidate indices best first, each with the method's predicted normalised score (or None)."""

    indices: list[int]
    scores: list[Optional[float]]
    neighbors: list[str] = field(default_factory=list)


def make_surrogate(meta: MetaParams, seed: int):
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor  # slow import

    if meta.surrogate == "random_forest":
        return RandomForestRegressor(n_estimators=meta.n_estimators, random_state=seed)
    return GradientBoostingRegressor(n_estimators=meta.n_estimators, random_state=seed)


def greedy_portfolio(normalised: np.ndarray, size: int) -> list[int]:
    """Greedily add the candidate that most raises the mean over tasks of the best score so far.

    ``normalised`` is (tasks, candidates). Ties go to the first candidate in seed order.
    """
    n_tasks, n_candidates = normalised.shape
    portfolio: list[int] = []
    best_so_far = np.zeros(n_tasks)  # normalised scores are >= 0, so 0 is "nothing yet"
    for _ in range(min(size, n_candidates)):
        gains = np.maximum(normalised, best_so_far[:, None]).mean(axis=0)
        gains[portfolio] = -np.inf  # never the same config twice, even when nothing improves
        pick = int(np.argmax(gains))  # argmax returns the first of equal maxima
        portfolio.append(pick)
        best_so_far = np.maximum(best_so_far, normalised[:, pick])
    return portfolio


def interleave_rankings(rankings: list[list[int]]) -> list[int]:
    """Round robin over rankings (the nearest task's first), skipping configs already taken."""
    order: list[int] = []
    seen: set[int] = set()
    for depth in range(max((len(r) for r in rankings), default=0)):
        for ranking in rankings:
            if depth < len(ranking) and ranking[depth] not in seen:
                seen.add(ranking[depth])
                order.append(ranking[depth])
    return order


@dataclass
class FamilyMetaModel:
    """Everything a family's recommendation needs; JSON-able apart from the sklearn surrogate."""

    grid: CandidateGrid
    scaler: FeatureScaler
    task_names: list[str]
    task_vectors: np.ndarray  # (tasks, features), scaled
    task_normalised: np.ndarray  # (tasks, candidates)
    portfolio: list[int]
    neighbors: int
    surrogate: Any  # a fitted sklearn regressor

    @property
    def family(self) -> str:
        return self.grid.family

    @classmethod
    def fit(cls, grid: CandidateGrid, tasks: list[TaskSweep], meta: MetaParams, seed: int) -> "FamilyMetaModel":
        if not tasks:
            raise MetahpoError(f"no {grid.family} task to fit a meta-model on")
        scaler = FeatureScaler.fit([t.metafeatures for t in tasks])
        task_vectors = np.array([scaler.transform(t.metafeatures) for t in tasks]).reshape(len(tasks), -1)
        task_normalised = np.array([t.normalised for t in tasks])

        encoding = grid.encode()
        features, targets = [], []
        for vector, task in zip(task_vectors, tasks):
            rows = np.flatnonzero(task.present)  # only configs that were actually run teach anything
            features.append(_surrogate_inputs(vector, encoding[rows]))
            targets.append(task.normalised[rows])
        surrogate = make_surrogate(meta, seed)
        surrogate.fit(np.vstack(features), np.concatenate(targets))

        return cls(
            grid=grid,
            scaler=scaler,
            task_names=[t.task for t in tasks],
            task_vectors=task_vectors,
            task_normalised=task_normalised,
            portfolio=greedy_portfolio(task_normalised, meta.portfolio_size),
            neighbors=meta.neighbors,
            surrogate=surrogate,
        )

    def nearest_tasks(self, metafeatures: dict[str, Optional[float]]) -> list[int]:
        """Training-task positions, nearest first (Euclidean, standardised; ties in task order)."""
        distances = np.linalg.norm(self.task_vectors - self.scaler.transform(metafeatures), axis=1)
        return [int(i) for i in np.argsort(distances, kind="stable")][: self.neighbors]

    def rank(self, method: str, metafeatures: dict[str, Optional[float]]) -> Ranking:
        neighbors = self.nearest_tasks(metafeatures)
        neighbor_names = [self.task_names[i] for i in neighbors]
        if method == "surrogate":
            inputs = _surrogate_inputs(self.scaler.transform(metafeatures), self.grid.encode())
            predictions = self.surrogate.predict(inputs)
            order = [int(i) for i in np.argsort(-predictions, kind="stable")]
            return Ranking(order, [float(predictions[i]) for i in order], neighbor_names)
        if method == "nearest":
            per_task = [
                [int(i) for i in np.argsort(-self.task_normalised[t], kind="stable")] for t in neighbors
            ]
            order = interleave_rankings(per_task)
            mean_score = self.task_normalised[neighbors].mean(axis=0)
            return Ranking(order, [float(mean_score[i]) for i in order], neighbor_names)
        if method == "portfolio":
            mean_score = self.task_normalised.mean(axis=0)
            return Ranking(list(self.portfolio), [float(mean_score[i]) for i in self.portfolio], neighbor_names)
        if method == "default":
            return default_ranking(self.grid, neighbor_names)
        raise MetahpoError(f"unknown recommendation method {method!r}; valid names: {', '.join(METHODS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": self.grid.to_json(),
            "scaler": self.scaler.to_json(),
            "task_names": list(self.task_names),
            "task_vectors": self.task_vectors.tolist(),
            "task_normalised": self.task_normalised.tolist(),
            "portfolio": list(self.portfolio),
            "portfolio_configs": [self.grid.configs[i] for i in self.portfolio],
            "neighbors": self.neighbors,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], surrogate: Any) -> "FamilyMetaModel":
        scaler = FeatureScaler.from_json(raw["scaler"])
        n_tasks = len(raw["task_names"])
        return cls(
            grid=CandidateGrid.from_json(raw["grid"]),
            scaler=scaler,
            task_names=list(raw["task_names"]),
            task_vectors=np.asarray(raw["task_vectors"], dtype=float).reshape(n_tasks, len(scaler.names)),
            task_normalised=np.asarray(raw["task_normalised"], dtype=float),
            portfolio=[int(i) for i in raw["portfolio"]],
            neighbors=int(raw["neighbors"]),
            surrogate=surrogate,
        )


def default_ranking(grid: CandidateGrid, neighbor_names: Optional[list[str]] = None) -> Ranking:
    return Ranking([grid.default_index], [None], list(neighbor_names or []))


def _surrogate_inputs(metafeature_vector: np.ndarray, config_encoding: np.ndarray) -> np.ndarray:
    """One row per config: the task's meta-feature vector, then the config encoding."""
    repeated = np.repeat(metafeature_vector[None, :], len(config_encoding), axis=0)
    return np.hstack([repeated, config_encoding])
