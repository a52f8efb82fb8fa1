"""transfer_bo: GP-BO whose initial design and surrogate come from the prior tasks (RGPE-style).

Warm start (the first ``n_warm`` = 2 asks, and every ask while all evaluations have failed):
the zero-shot ranking (``zero_shot.prior_scores``: a random forest on the prior tasks'
``[meta-features, configuration] -> normalised objective``, scoring the target's rows), best
unobserved row first. With meta-features the forest predicts for the target's dataset; without
them it ranks configurations by their average normalised performance over the prior tasks.

Surrogate (from two observations on), after Feurer, Letham & Bakshy (2018), "Scalable
meta-learning for Bayesian optimization using ranking-weighted Gaussian process ensembles".
Task similarity comes from the target's observed objectives, so it needs no meta-features:
- one GP per prior task (``metahpo.hpo.gp``), fitted on at most ``prior_rows`` = 200 rows of the
  task (its best ``prior_rows // 4``, then a sample of the rest seeded by ``PRIOR_SEED``), on its
  own standardised objective (failed rows -> the task's worst), with ``prior_restarts`` = 0
  random restarts. It and its predictions over a target pool depend on the prior task (and the
  pool) alone, so they are computed once and shared by every strategy instance
  (``metahpo.hpo.cache``): a leave-one-task-out benchmark fits each task's GP once and predicts
  each pool once, not once per held-out task and seed;
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
predictions live in its own task's standardised units, which is what the paper does too. The
paper's warm start is random; ours is the meta-model's. Without prior tasks, the warm start is
gp_bo's space-filling design and the ensemble is the target GP alone (gp_bo).
"""

from __future__ import annotations

from typing import ClassVar, Optional

import numpy as np

from metahpo.hpo.base import STRATEGIES, Query
from metahpo.hpo.cache import IdentityCache
from metahpo.hpo.gp import GaussianProcess
from metahpo.hpo.metadataset import TaskData
from metahpo.hpo.strategies.gp_bo import GPBO, choose_by_ei, observed_arrays
from metahpo.hpo.strategies.zero_shot import prior_scores
from metahpo.hpo.surrogate import training_rows


def standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 1e-12 else 1.0)


def mis_ranked_pairs(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """(n, n) 0/1 matrix: pair (a, b) ordered one way by the prediction, the other by the values."""
    return ((predicted[:, None] < predicted[None, :]) != (actual[:, None] < actual[None, :])).astype(float)


PRIOR_SEED = 0  # a prior GP depends on its task alone, so strategy instances (seeds, held-out tasks) share it
_prior_gps = IdentityCache(size=128)  # fitted prior GPs (about 0.7 MB each at 200 rows)
_pool_predictions = IdentityCache(size=256)  # (mean, variance) of a prior GP over a pool (0.5 MB per 30,000 rows)


def fitted_prior_gp(task: TaskData, rows: int, restarts: int) -> GaussianProcess:
    """GP on a subsample of the task's standardised objective, cached by the identity of its X and y.

    (Not of the TaskData: a leave-one-task-out fold's views of a task share its arrays, so one GP
    serves every fold.) The subsample is the best ``rows // 4`` rows and a sample (seeded by
    PRIOR_SEED) of the rest; failed rows count as the task's worst.
    """
    return _prior_gps.get((task.X, task.y), (rows, restarts), lambda: _fit_prior_gp(task, rows, restarts))


def _fit_prior_gp(task: TaskData, rows: int, restarts: int) -> GaussianProcess:
    finite = np.isfinite(task.y)
    values = np.where(finite, task.y, task.y[finite].min())  # failed rows: the task's worst
    fit_rows = training_rows(values, rows, np.random.default_rng(PRIOR_SEED))
    return GaussianProcess(restarts=restarts).fit(task.X[fit_rows], standardised(values)[fit_rows], seed=PRIOR_SEED)


class PriorModel:
    """One prior task's GP, and its predictions on the target pool (cached: neither ever changes)."""

    def __init__(self, task: TaskData, rows: int, restarts: int) -> None:
        self.task = task
        self.gp = fitted_prior_gp(task, rows, restarts)

    def on_pool(self, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _pool_predictions.get((self.gp, pool), None, lambda: self.gp.predict(pool))

    def mean_at(self, pool: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.on_pool(pool)[0][rows]


class TransferBO(GPBO):
    name = "transfer_bo"
    uses_prior = True
    without_prior = "GP-BO from gp_bo's space-filling initial design"
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
    def warm_start(self) -> int:
        """The best unobserved row of the zero-shot ranking; gp_bo's initial design without prior tasks."""
        if not self.models:
            return self.design_row()
        if self.zero_shot is None:
            self.zero_shot = prior_scores(self.target, self.prior)
        candidates = self.unobserved()
        return int(candidates[np.argmax(self.zero_shot[candidates])])

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
