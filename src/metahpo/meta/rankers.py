"""fit_meta's meta-learners, as rankers of a family's candidate grid over the strategies' task data.

Each ranker reads the same ``TaskData`` as the HPO strategies (``metahpo.hpo.metadataset``): the
prior tasks' pools, their standardised meta-features and their normalised scores (1 - regret):
- surrogate: the one surrogate of ``metahpo.hpo.surrogate`` (zero_shot's), here with the ``meta``
  section's regressor, scoring the candidates for the target's meta-features;
- nearest: the best candidates of the nearest prior tasks (Euclidean, standardised meta-features);
- portfolio: a greedy zero-shot portfolio (``metahpo.hpo.prior_table``, the portfolio strategy's), the
  same for every new task;
- default: the family's default config from params.

``FamilyMetaModel`` holds what ranking needs once the sweeps are gone (persisted by
``metahpo.meta.persist``): the candidate grid, the scaler, each prior task's scores on the grid and
meta-feature vector, the portfolio and the fitted surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from metahpo.errors import MetahpoError
from metahpo.hpo import surrogate
from metahpo.hpo.metadataset import MetaDataset, MetaFeatureScaler, TaskData, normalised_scores
from metahpo.hpo.prior_table import greedy_portfolio  # shared with the portfolio strategy
from metahpo.meta.candidates import CandidateGrid

METHODS = ("surrogate", "nearest", "portfolio", "default")


@dataclass
class Ranking:
    """Candidate indices best first, each with the method's predicted normalised score (or None)."""

    indices: list[int]
    scores: list[Optional[float]]
    neighbors: list[str] = field(default_factory=list)


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


def nearest_tasks(target: TaskData, prior: list[TaskData], n: int) -> list[int]:
    """Positions in ``prior``, nearest first (Euclidean on standardised meta-features; ties in task order)."""
    vectors = np.array([t.meta_features for t in prior]).reshape(len(prior), -1)
    distances = np.linalg.norm(vectors - target.meta_features, axis=1)
    return [int(i) for i in np.argsort(distances, kind="stable")][:n]


def on_grid(grid: CandidateGrid, task: TaskData) -> TaskData:
    """A prior task seen on the candidate grid: y = its normalised score per candidate, 0 where not run."""
    rows = grid.rows_in(task)
    if not surrogate.usable([task]):  # every run failed: every candidate is the task's worst
        return grid.pool(task.name, task.meta_features, np.zeros(len(grid)))
    scores = np.where(rows >= 0, normalised_scores(task)[np.maximum(rows, 0)], 0.0)
    return grid.pool(task.name, task.meta_features, scores)


def surrogate_regressor(meta: Any, seed: int):
    """The ``meta`` section's regressor (``meta.surrogate``, ``meta.n_estimators``), for ``fit_surrogate``."""
    return lambda n_rows: surrogate.make_regressor(meta.surrogate, meta.n_estimators, seed)


def default_ranking(grid: CandidateGrid, neighbor_names: Optional[list[str]] = None) -> Ranking:
    return Ranking([grid.default_index], [None], list(neighbor_names or []))


@dataclass
class FamilyMetaModel:
    """Everything a family's recommendation needs; JSON-able apart from the sklearn surrogate."""

    grid: CandidateGrid
    scaler: MetaFeatureScaler
    prior: list[TaskData]  # the training tasks on the grid (``on_grid``), meta-features standardised
    portfolio: list[int]
    neighbors: int
    surrogate: Any  # a fitted sklearn regressor on [meta-features, X]

    @property
    def family(self) -> str:
        return self.grid.family

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.prior]

    @classmethod
    def fit(cls, grid: CandidateGrid, training: MetaDataset, meta: Any, seed: int) -> "FamilyMetaModel":
        """Fit on every task of ``training`` (meta-features standardised by its scaler); ``meta``: params.meta."""
        tasks = list(training.tasks.values())
        if not tasks or training.scaler is None:
            raise MetahpoError(f"no {grid.family} task with meta-features to fit a meta-model on")
        model = surrogate.fit_surrogate(tasks, surrogate_regressor(meta, seed), True, seed)
        if model is None:
            raise MetahpoError(f"no {grid.family} task has a finite objective: nothing to fit a meta-model on")
        prior = [on_grid(grid, t) for t in tasks]
        return cls(
            grid=grid,
            scaler=training.scaler,
            prior=prior,
            portfolio=greedy_portfolio(np.array([t.y for t in prior]), meta.portfolio_size),
            neighbors=meta.neighbors,
            surrogate=model,
        )

    def target(self, metafeatures: Mapping[str, Any]) -> TaskData:
        """A new task: the candidate grid as its pool, its meta-features standardised by the training scaler."""
        return self.grid.pool("target", self.scaler.transform(metafeatures))

    def rank(self, method: str, metafeatures: Mapping[str, Any]) -> Ranking:
        target = self.target(metafeatures)
        neighbors = nearest_tasks(target, self.prior, self.neighbors)
        neighbor_names = [self.prior[i].name for i in neighbors]
        if method == "surrogate":
            predictions = surrogate.predict(self.surrogate, target, True)
            order = [int(i) for i in np.argsort(-predictions, kind="stable")]
            return Ranking(order, [float(predictions[i]) for i in order], neighbor_names)
        if method == "nearest":
            per_task = [[int(i) for i in np.argsort(-self.prior[t].y, kind="stable")] for t in neighbors]
            mean_score = np.mean([self.prior[t].y for t in neighbors], axis=0)
            order = interleave_rankings(per_task)
            return Ranking(order, [float(mean_score[i]) for i in order], neighbor_names)
        if method == "portfolio":
            mean_score = np.mean([t.y for t in self.prior], axis=0)
            return Ranking(list(self.portfolio), [float(mean_score[i]) for i in self.portfolio], neighbor_names)
        if method == "default":
            return default_ranking(self.grid, neighbor_names)
        raise MetahpoError(f"unknown recommendation method {method!r}; valid names: {', '.join(METHODS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": self.grid.to_json(),
            "scaler": self.scaler.to_json(),
            "task_names": self.task_names,
            "task_vectors": [t.meta_features.tolist() for t in self.prior],
            "task_normalised": [t.y.tolist() for t in self.prior],
            "portfolio": list(self.portfolio),
            "portfolio_configs": [self.grid.configs[i] for i in self.portfolio],
            "neighbors": self.neighbors,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], fitted_surrogate: Any) -> "FamilyMetaModel":
        grid = CandidateGrid.from_json(raw["grid"])
        scaler = MetaFeatureScaler.from_json(raw["scaler"])
        prior = [
            grid.pool(name, np.asarray(vector, dtype=float).reshape(len(scaler.names)), np.asarray(scores, dtype=float))
            for name, vector, scores in zip(raw["task_names"], raw["task_vectors"], raw["task_normalised"])
        ]
        return cls(grid, scaler, prior, [int(i) for i in raw["portfolio"]], int(raw["neighbors"]), fitted_surrogate)
