"""transfer_bo: GP-BO whose initial design and surrogate come from the prior tasks (RGPE-style).

Warm start (while the target has fewer than ``max(2, n_warm)`` full evaluations, ``n_warm`` = 2):
- with meta-features (the target's and the prior tasks'), prior tasks are ranked by the Euclidean
  distance of their standardised meta-features to the target's; the ask is the unobserved pool
  row nearest (in the encoded space) to the best configuration of the most similar task, then of
  the next task, ... (then their second best, round-robin);
- without them, before two observations the ask follows the zero-shot ranking
  (``zero_shot.prior_scores``: a meta-model on the prior tasks scoring the target's rows); with two
  or more (when ``n_warm`` > 2) prior tasks are ranked by the Spearman correlation between the
  target's observed values and each prior task's GP mean at those rows, then as above.

Surrogate (from two observations on), after Feurer, Letham & Bakshy (2018), "Scalable
meta-learning for Bayesian optimization using ranking-weighted Gaussian process ensembles":
- one GP per prior task (``metahpo.hpo.gp``), fitted on at most ``prior_rows`` = 200 rows of the
  task (its best ``prior_rows // 4``, then a sample of the rest seeded by ``PRIOR_SEED``), on its
  own standardised objective (failed rows -> the task's worst), with ``prior_restarts`` = 0
  random restarts. It depends on the prior task alone, so it is fitted once and shared by every
  strategy instance (a bounded cache keyed by the TaskData object): a leave-one-task-out
  benchmark fits each task's GP once, not once per held-out task and seed. Its mean / variance
  over the target's pool are computed the first time the model gets a weight, then kept for the
  instance;
- one GP on the target's observations (standardised, failed -> worst observed, as gp_bo);
- weights: ``n_bootstrap`` = 500 seeded bootstrap resamples of the target's observations; in each,
  a model's loss is the number of mis-ranked pairs of the resample (for the target GP, under its
  leave-one-out means, computed in closed form); a model's weight is the fraction of resamples in
  which it has the lowest loss (ties broken at random);
- weight dilution: a prior model whose median loss exceeds the ``drop_percentile`` = 95th
  percentile of the target model's losses is dropped (the paper's rule);
- prediction: mean = sum w_i mu_i, variance = sum w_i^2 var_i (a weighted sum of independent
  Gaussians); the ask maximises EI over the unobserved rows, the incumbent being the best
  standardised observation and ``xi`` = 0.01.

Simplified versus the paper: losses come from bootstrap resamples of the observations rather than
from posterior samples of each model; the target GP's LOO means reuse its hyperparameters (no
refit per fold); prior GPs see a bounded subsample, not all of a task's rows; each model's
predictions live in its own task's standardised units, which is what the paper does too.
Without prior tasks, the warm start is random and the ensemble is the target GP alone (gp_bo).
"""

from __future__ import annotations

import weakref
from typing import ClassVar, Optional

import numpy as np
from scipy.stats import spearmanr

from metahpo.hpo.base import STRATEGIES, Query
from metahpo.hpo.gp import GaussianProcess
from metahpo.hpo.metadataset import TaskData
from metahpo.hpo.strategies.gp_bo import GPBO, choose_by_ei, observed_arrays


def standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 1e-12 else 1.0)


def mis_ranked_pairs(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """(n, n) 0/1 matrix: pair (a, b) ordered one way by the prediction, the other by the values."""
    return ((predicted[:, None] < predicted[None, :]) != (actual[:, None] < actual[None, :])).astype(float)


PRIOR_SEED = 0  # a prior GP depends on its task alone, so strategy instances (seeds, held-out tasks) share it
PRIOR_CACHE_SIZE = 128  # fitted prior GPs kept (about 0.7 MB each at 200 rows)
_prior_cache: dict[int, tuple[weakref.ref, tuple[int, int], GaussianProcess, np.ndarray]] = {}


def fitted_prior_gp(task: TaskData, rows: int, restarts: int) -> tuple[GaussianProcess, np.ndarray]:
    """(GP on a subsample of the task's standardised objective, the task's rows best first), cached.

    The subsample is the best ``rows // 4`` rows and a sample (seeded by PRIOR_SEED) of the rest;
    failed rows count as the task's worst. The cache is keyed by the TaskData object (a weak
    reference guards against a recycled id), so it assumes a task is not modified in place.
    """
    entry = _prior_cache.get(id(task))
    if entry is not None and entry[0]() is task and entry[1] == (rows, restarts):
        return entry[2], entry[3]
    rng = np.random.default_rng(PRIOR_SEED)
    values = task.y.astype(float)
    finite = np.isfinite(values)
    values = np.where(finite, values, values[finite].min())
    best_rows = np.argsort(-values, kind="stable")
    n_best = rows // 4
    if len(values) > rows:
        fit_rows = np.concatenate([best_rows[:n_best], rng.choice(best_rows[n_best:], size=rows - n_best, replace=False)])
    else:
        fit_rows = best_rows
    gp = GaussianProcess(restarts=restarts).fit(task.X[fit_rows], standardised(values)[fit_rows], seed=PRIOR_SEED)
    if len(_prior_cache) >= PRIOR_CACHE_SIZE:
        _prior_cache.pop(next(iter(_prior_cache)))  # the oldest entry
    _prior_cache[id(task)] = (weakref.ref(task), (rows, restarts), gp, best_rows)
    return gp, best_rows


class PriorModel:
    """One prior task's GP, and its predictions on the target pool (cached on first use: the pool never changes)."""

    def __init__(self, task: TaskData, rows: int, restarts: int) -> None:
        self.task = task
        self.gp, self.best_rows = fitted_prior_gp(task, rows, restarts)
        self._pool: Optional[tuple[np.ndarray, np.ndarray]] = None

    def on_pool(self, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._pool is None:
            self._pool = self.gp.predict(pool)
        return self._pool

    def mean_at(self, pool: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self._pool is not None:
            return self._pool[0][rows]
        return self.gp.predict(pool[rows])[0]


class TransferBO(GPBO):
    name = "transfer_bo"
    uses_prior = True
    n_warm: ClassVar[int] = 2
    prior_rows: ClassVar[int] = 200
    prior_restarts: ClassVar[int] = 0  # one L-BFGS-B run per prior GP: 200 rows pin the hyperparameters down
    n_bootstrap: ClassVar[int] = 500
    drop_percentile: ClassVar[float] = 95.0

    def __init__(self, target, prior, seed, budget) -> None:
        super().__init__(target, prior, seed, budget)
        usable = [t for t in prior if t.y is not None and np.isfinite(t.y).any()]
        self.models = [PriorModel(t, self.prior_rows, self.prior_restarts) for t in usable]
        self.zero_shot: Optional[np.ndarray] = None  # computed on the first warm ask that needs it
        self.weights = np.zeros(len(self.models) + 1)  # the last ask's ensemble weights, target last

    # --- warm start --------------------------------------------------------------------------
    def similarity_order(self) -> Optional[list[int]]:
        """Prior models, most similar first; None when nothing tells them apart yet."""
        if self.target.meta_features is not None:
            distance = [np.inf if m.task.meta_features is None else
                        float(np.linalg.norm(m.task.meta_features - self.target.meta_features)) for m in self.models]
            if np.isfinite(distance).any():
                return list(np.argsort(distance, kind="stable"))
        finite = sum(np.isfinite(v) for v in self.observed.values())
        if finite >= 2:
            indices, values = observed_arrays(self.observed)
            correlation = []
            for model in self.models:
                rho = spearmanr(values, model.mean_at(self.target.X, indices))[0]
                correlation.append(rho if np.isfinite(rho) else -1.0)  # constant values: no evidence
            return list(np.argsort(-np.asarray(correlation), kind="stable"))
        return None

    def nearest_unobserved(self, configuration: np.ndarray) -> int:
        candidates = self.unobserved()
        distance = ((self.target.X[candidates] - configuration) ** 2).sum(1)
        return int(candidates[np.argmin(distance)])

    def warm_start(self) -> int:
        if not self.models:
            return self.random_unobserved()
        order = self.similarity_order()
        if order is None:  # no meta-features, fewer than two observations: the zero-shot ranking
            if self.zero_shot is None:
                from metahpo.hpo.strategies.zero_shot import prior_scores

                self.zero_shot = prior_scores(self.target, self.prior, self.seed)
            candidates = self.unobserved()
            return int(candidates[np.argmax(self.zero_shot[candidates])])
        # the k-th warm ask takes task order[k % T]'s (k // T + 1)-th best configuration
        step = len(self.observed)
        model = self.models[order[step % len(order)]]
        rank = min(step // len(order), len(model.best_rows) - 1)
        return self.nearest_unobserved(model.task.X[model.best_rows[rank]])

    # --- ensemble ----------------------------------------------------------------------------
    def ensemble_weights(self, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """RGPE weights of [prior models..., target model] from bootstrap ranking losses."""
        predictions = [m.mean_at(self.target.X, indices) for m in self.models] + [self.gp.loo_mean()]
        counts = self.rng.multinomial(len(values), np.full(len(values), 1.0 / len(values)), size=self.n_bootstrap)
        # loss of a resample = sum over its (ordered) pairs of mis-ranked ones = c^T D c
        losses = np.column_stack([((counts @ mis_ranked_pairs(p, values)) * counts).sum(1) for p in predictions])
        threshold = np.percentile(losses[:, -1], self.drop_percentile)
        dropped = np.r_[np.median(losses[:, :-1], axis=0) > threshold, False]
        losses[:, dropped] = np.inf
        # integer losses: a uniform [0, 0.5) draw breaks ties at random and nothing else
        winners = np.argmin(losses + self.rng.uniform(0.0, 0.5, size=losses.shape), axis=1)
        return np.bincount(winners, minlength=len(predictions)) / self.n_bootstrap

    def ask(self) -> Query:
        if len(self.observed) < max(2, self.n_warm):
            return Query(self.warm_start())
        try:
            indices, values = observed_arrays(self.observed)
        except ValueError:  # every evaluation failed: nothing to rank models with
            return Query(self.warm_start())
        values = standardised(values)
        self.fit_target_gp(values, indices)
        self.weights = self.ensemble_weights(indices, values)
        candidates = self.unobserved()
        mean = np.zeros(len(candidates))
        variance = np.zeros(len(candidates))
        for model, weight in zip(self.models, self.weights):
            if weight > 0:
                model_mean, model_variance = model.on_pool(self.target.X)
                mean += weight * model_mean[candidates]
                variance += weight**2 * model_variance[candidates]
        if self.weights[-1] > 0:
            target_mean, target_variance = self.gp.predict(self.target.X[candidates])
            mean += self.weights[-1] * target_mean
            variance += self.weights[-1] ** 2 * target_variance
        return Query(choose_by_ei(candidates, mean, variance, values.max(), self.xi))


STRATEGIES.register(TransferBO.name, TransferBO)
