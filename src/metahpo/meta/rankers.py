"""fit_meta's meta-learners, as rankers of a family's candidate grid over the strategies' task data.

Each ranker reads the same ``TaskData`` as the HPO strategies (``metahpo.hpo.metadataset``): the
prior tasks' pools, their standardised meta-features and their normalised scores (1 - regret):
- surrogate: the one surrogate of ``metahpo.hpo.surrogate`` (zero_shot's), here with the ``meta``
  section's regressor, scoring the candidates for the target's meta-features;
- nearest: the best candidates of the nearest prior tasks (Euclidean, standardised meta-features);
- portfolio: a greedy zero-shot portfolio (``metahpo.hpo.prior_table``, the portfolio strategy's), the
  same for every new task;
- default: the family's default config from params;
- safe: the surrogate's ranking unless the prior tasks do not back it; then the default config
  first, with ``fallback`` "default" and the reason: too few prior tasks, a target unlike every
  prior task, or a predicted gain over the default within the calibrated margin.

The surrogate's scores carry a split-conformal interval (``Calibration``): each prior task is held
out in turn (scaler refitted without it, as fit_meta's LOTO does), the surrogate refitted on the
others predicts its grid, and the residuals size the interval (``metahpo.conformal``, the meta
selector's rule). The same folds give the safe rule's threshold: the one-sided margin by which the
surrogate over-predicts a config's gain over the default, among the configs it ranks above it.

``FamilyMetaModel`` holds what ranking needs once the sweeps are gone (persisted by
``metahpo.meta.persist``): the candidate grid, the scaler, each prior task's scores on the grid and
meta-feature vector, the portfolio, the fitted surrogate and its calibration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from metahpo.conformal import conformal_quantile
from metahpo.errors import MetahpoError
from metahpo.hpo import surrogate
from metahpo.hpo.metadataset import MetaDataset, MetaFeatureScaler, TaskData, normalised_scores
from metahpo.hpo.prior_table import greedy_portfolio  # shared with the portfolio strategy
from metahpo.meta.candidates import CandidateGrid

METHODS = ("surrogate", "nearest", "portfolio", "default", "safe")
FALLBACK = "default"  # what the safe rule falls back to: the family's default config (always a grid point)


@dataclass
class Ranking:
    """Candidate indices best first, each with the method's predicted normalised score (or None).

    ``lower``/``upper``: each score's calibrated interval (empty when the method has none);
    ``fallback``: "default" when the safe rule put the default config first, ``reason`` says why.
    """

    indices: list[int]
    scores: list[Optional[float]]
    neighbors: list[str] = field(default_factory=list)
    lower: list[Optional[float]] = field(default_factory=list)
    upper: list[Optional[float]] = field(default_factory=list)
    fallback: Optional[str] = None
    reason: str = ""

    def interval(self, position: int) -> tuple[Optional[float], Optional[float]]:
        if position >= len(self.lower):
            return None, None
        return self.lower[position], self.upper[position]


@dataclass
class Calibration:
    """What held-out prior tasks say about the surrogate (NaN: fewer than 2 tasks, nothing to hold out).

    half_width: two-sided split-conformal half-width of a predicted normalised score; gain_margin:
    one-sided conformal bound on how much the surrogate over-predicts a config's gain over the
    default (configs it ranks above the default); typical_distance: the largest distance from a
    prior task to its nearest other prior task (standardised meta-features).
    """

    coverage: float
    min_prior_tasks: int
    half_width: float = math.nan
    gain_margin: float = math.nan
    typical_distance: float = math.nan
    residuals: int = 0  # score residuals behind half_width
    gain_residuals: int = 0  # gain residuals behind gain_margin

    def to_json(self) -> dict[str, Any]:
        # JSON has no NaN: null stands for "not calibrated"
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Calibration":
        def number(key: str) -> float:
            return math.nan if raw.get(key) is None else float(raw[key])

        return cls(
            coverage=float(raw["coverage"]), min_prior_tasks=int(raw["min_prior_tasks"]),
            half_width=number("half_width"), gain_margin=number("gain_margin"),
            typical_distance=number("typical_distance"), residuals=int(raw["residuals"]),
            gain_residuals=int(raw["gain_residuals"]),
        )  # fmt: skip


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


def task_distances(prior: list[TaskData], vector: np.ndarray) -> np.ndarray:
    """Euclidean distance from ``vector`` to each prior task's standardised meta-features."""
    vectors = np.array([t.meta_features for t in prior]).reshape(len(prior), -1)
    return np.linalg.norm(vectors - vector, axis=1)


def nearest_tasks(target: TaskData, prior: list[TaskData], n: int) -> list[int]:
    """Positions in ``prior``, nearest first (Euclidean on standardised meta-features; ties in task order)."""
    return [int(i) for i in np.argsort(task_distances(prior, target.meta_features), kind="stable")][:n]


def typical_distance(prior: list[TaskData]) -> float:
    """The largest distance from a prior task to its nearest other one: how far apart the prior tasks get."""
    if len(prior) < 2:
        return math.nan
    return float(max(np.delete(task_distances(prior, t.meta_features), i).min() for i, t in enumerate(prior)))


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


def calibrate(grid: CandidateGrid, training: MetaDataset, prior: list[TaskData], meta: Any, seed: int) -> Calibration:
    """Hold out each training task (scaler refitted without it), predict its grid, pool the residuals.

    ``prior``: the training tasks on the grid (``on_grid``), standardised by ``training.scaler``.
    """
    calibration = Calibration(coverage=meta.coverage, min_prior_tasks=meta.min_prior_tasks,
                              typical_distance=typical_distance(prior))  # fmt: skip
    default = grid.default_index
    score_residuals, gain_residuals = [], []
    for task in training.tasks.values():
        inner = training.without(task.name)
        if inner.scaler is None or not surrogate.usable([task]):
            continue
        model = surrogate.fit_surrogate(list(inner.tasks.values()), surrogate_regressor(meta, seed), True, seed)
        if model is None:
            continue
        predicted = surrogate.predict(model, grid.pool(task.name, inner.scaler.transform(task.mf_raw or {})), True)
        run = grid.rows_in(task) >= 0
        actual = on_grid(grid, task).y
        score_residuals.append(np.abs(predicted - actual)[run])
        if run[default]:  # over-prediction of the gain over the default, where the surrogate prefers a config
            above = run & (predicted > predicted[default])
            gain_residuals.append((predicted - predicted[default] - (actual - actual[default]))[above])
    if score_residuals:
        residuals = np.concatenate(score_residuals)
        calibration.half_width, calibration.residuals = conformal_quantile(residuals, meta.coverage), len(residuals)
    if gain_residuals:
        residuals = np.concatenate(gain_residuals)
        calibration.gain_margin = conformal_quantile(residuals, meta.coverage)
        calibration.gain_residuals = len(residuals)
    return calibration


def default_ranking(grid: CandidateGrid, neighbor_names: Optional[list[str]] = None) -> Ranking:
    return Ranking([grid.default_index], [None], list(neighbor_names or []))


def too_few_reason(n_prior: int, min_prior_tasks: int) -> str:
    return f"{n_prior} prior task{'' if n_prior == 1 else 's'}: the safe rule needs {min_prior_tasks}"


def fallback_ranking(grid: CandidateGrid, min_prior_tasks: int) -> Ranking:
    """The safe rule with no meta-model at all (no prior task): the default config, saying why."""
    return Ranking([grid.default_index], [None], fallback=FALLBACK, reason=too_few_reason(0, min_prior_tasks))


@dataclass
class FamilyMetaModel:
    """Everything a family's recommendation needs; JSON-able apart from the sklearn surrogate."""

    grid: CandidateGrid
    scaler: MetaFeatureScaler
    prior: list[TaskData]  # the training tasks on the grid (``on_grid``), meta-features standardised
    portfolio: list[int]
    neighbors: int
    surrogate: Any  # a fitted sklearn regressor on [meta-features, X]
    calibration: Calibration

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
            calibration=calibrate(grid, training, prior, meta, seed),
        )

    def target(self, metafeatures: Mapping[str, Any]) -> TaskData:
        """A new task: the candidate grid as its pool, its meta-features standardised by the training scaler."""
        return self.grid.pool("target", self.scaler.transform(metafeatures))

    def rank(self, method: str, metafeatures: Mapping[str, Any]) -> Ranking:
        target = self.target(metafeatures)
        neighbors = nearest_tasks(target, self.prior, self.neighbors)
        neighbor_names = [self.prior[i].name for i in neighbors]
        if method in ("surrogate", "default", "safe"):
            predictions = surrogate.predict(self.surrogate, target, True)
            if method == "default":
                order = [self.grid.default_index]
            else:
                order = [int(i) for i in np.argsort(-predictions, kind="stable")]
            reason = self.fallback_reason(target, predictions) if method == "safe" else None
            if reason is not None:
                order = [self.grid.default_index] + [i for i in order if i != self.grid.default_index]
            ranking = Ranking(order, [float(predictions[i]) for i in order], neighbor_names,
                              fallback=None if reason is None else FALLBACK, reason=reason or "")  # fmt: skip
            return self.with_intervals(ranking)
        if method == "nearest":
            per_task = [[int(i) for i in np.argsort(-self.prior[t].y, kind="stable")] for t in neighbors]
            mean_score = np.mean([self.prior[t].y for t in neighbors], axis=0)
            order = interleave_rankings(per_task)
            return Ranking(order, [float(mean_score[i]) for i in order], neighbor_names)
        if method == "portfolio":
            mean_score = np.mean([t.y for t in self.prior], axis=0)
            return Ranking(list(self.portfolio), [float(mean_score[i]) for i in self.portfolio], neighbor_names)
        raise MetahpoError(f"unknown recommendation method {method!r}; valid names: {', '.join(METHODS)}")

    def with_intervals(self, ranking: Ranking) -> Ranking:
        """The surrogate's scores with their calibrated interval, clipped to [0, 1] (normalised scores)."""
        half = self.calibration.half_width
        if math.isnan(half):  # one prior task: nothing was held out to size an interval with
            ranking.lower, ranking.upper = [None] * len(ranking.scores), [None] * len(ranking.scores)
        else:
            ranking.lower = [max(0.0, s - half) for s in ranking.scores]
            ranking.upper = [min(1.0, s + half) for s in ranking.scores]
        return ranking

    def fallback_reason(self, target: TaskData, predictions: np.ndarray) -> Optional[str]:
        """Why the safe rule puts the default first for ``target``; None when the surrogate's top-1 stands."""
        calibration = self.calibration
        if len(self.prior) < calibration.min_prior_tasks:
            return too_few_reason(len(self.prior), calibration.min_prior_tasks)
        nearest = float(task_distances(self.prior, target.meta_features).min())
        if not nearest <= calibration.typical_distance:
            return (f"unlike every prior task: distance {nearest:.2f} to the nearest vs at most "
                    f"{calibration.typical_distance:.2f} between prior tasks")  # fmt: skip
        default, top = self.grid.default_index, int(np.argmax(predictions))
        if predictions[top] <= predictions[default]:
            return None  # the surrogate itself ranks the default first
        gain = float(predictions[top] - predictions[default])
        if not gain > calibration.gain_margin:  # a NaN margin (nothing held out) falls back too
            return (f"interval overlaps the default's: predicted gain {gain:.3f} over the default "
                    f"within the calibrated margin {calibration.gain_margin:.3f}")  # fmt: skip
        return None

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
            "calibration": self.calibration.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], fitted_surrogate: Any) -> "FamilyMetaModel":
        grid = CandidateGrid.from_json(raw["grid"])
        scaler = MetaFeatureScaler.from_json(raw["scaler"])
        prior = [
            grid.pool(name, np.asarray(vector, dtype=float).reshape(len(scaler.names)), np.asarray(scores, dtype=float))
            for name, vector, scores in zip(raw["task_names"], raw["task_vectors"], raw["task_normalised"])
        ]
        return cls(grid, scaler, prior, [int(i) for i in raw["portfolio"]], int(raw["neighbors"]), fitted_surrogate,
                   Calibration.from_json(raw["calibration"]))  # fmt: skip
