"""gp_bo: Bayesian optimisation with a Gaussian process and expected improvement, over the pool.

- Initial design: ``n_init`` (default 3) distinct pool rows drawn at random (seeded). Three points
  are enough to fit the few hyperparameters of a low-dimensional search space and leave most of a
  small budget (15-50 trials) to the model; never more than half the budget.
- Then every ask fits ``metahpo.hpo.gp.GaussianProcess`` (Matérn-5/2 ARD, hyperparameters by
  marginal likelihood, warm-started from the previous ask's plus ``restarts`` seeded restarts) on
  the full evaluations told so far and asks the unobserved row with the highest expected
  improvement (``xi`` times the observed standard deviation over the best observed value).
- A failed evaluation (NaN) is replaced by the worst observed finite value: the region is bad, but
  its size stays unknown; while every observation has failed, the ask is random.
- Where EI vanishes on every row (an exhausted neighbourhood), the row with the highest upper
  confidence bound (mean + 2 std) is asked instead, so the search keeps moving.
Partial evaluations (told with ``epochs``) are ignored.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from metahpo.hpo.base import STRATEGIES, Query, Strategy
from metahpo.hpo.gp import GaussianProcess, expected_improvement


def observed_arrays(observed: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the told evaluations, failed (NaN) values -> the worst finite one.

    Raises ValueError when no value is finite (nothing to model yet).
    """
    indices = np.fromiter(observed, dtype=int, count=len(observed))
    values = np.fromiter(observed.values(), dtype=float, count=len(observed))
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("no finite observation")
    return indices, np.where(finite, values, values[finite].min())


def choose_by_ei(candidates: np.ndarray, mean: np.ndarray, variance: np.ndarray, best: float, xi: float) -> int:
    """The candidate with the highest EI; the highest UCB where EI is zero everywhere."""
    ei = expected_improvement(mean, variance, best, xi)
    if ei.max() > 0.0:
        return int(candidates[np.argmax(ei)])
    return int(candidates[np.argmax(mean + 2.0 * np.sqrt(variance))])


class GPBO(Strategy):
    name = "gp_bo"
    n_init: ClassVar[int] = 3
    xi: ClassVar[float] = 0.01  # in units of the observed standard deviation
    restarts: ClassVar[int] = 1  # random L-BFGS-B restarts per fit, besides the warm start

    def __init__(self, target, prior, seed, budget) -> None:
        super().__init__(target, prior, seed, budget)
        self.gp = GaussianProcess(restarts=self.restarts)
        self.n_random = max(1, min(self.n_init, budget // 2))

    def random_unobserved(self) -> int:
        return int(self.rng.choice(self.unobserved()))

    def fit_target_gp(self, values: np.ndarray, indices: np.ndarray) -> None:
        # the previous ask's hyperparameters are the first start: consecutive fits barely differ
        self.gp.fit(self.target.X[indices], values, seed=self.seed + len(indices))

    def ask(self) -> Query:
        if len(self.observed) < self.n_random:
            return Query(self.random_unobserved())
        try:
            indices, values = observed_arrays(self.observed)
        except ValueError:  # every evaluation failed: nothing to model
            return Query(self.random_unobserved())
        self.fit_target_gp(values, indices)
        candidates = self.unobserved()
        mean, variance = self.gp.predict(self.target.X[candidates])
        return Query(choose_by_ei(candidates, mean, variance, values.max(), self.xi * values.std()))


STRATEGIES.register(GPBO.name, GPBO)
