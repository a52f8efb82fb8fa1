"""``average_rank``: the naive transfer baseline, no model: ask the pool by mean normalised score over the prior tasks.

Each prior task's scores are normalised as everywhere else (its best row 1, its worst and failed
rows 0: ``metadataset.normalised_scores``), so every task weighs the same whatever its metric's
range. A target row's score is the mean over the prior tasks of their score of that configuration,
matched by its ``hp.*`` values; where a prior task did not run that configuration (pools that
differ), of the configuration it ran nearest to it in the encoded space (``prior_table``). Rows
are asked best first, ties (and every row when no prior task has a finite objective) in a seeded
random order. The order is fixed before the first ask: the held-out task's values are never read.
"""

from __future__ import annotations

import numpy as np

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.metadataset import TaskData
from metahpo.hpo.prior_table import prior_score_table
from metahpo.hpo.strategies.grid import FixedOrder, best_first


def mean_prior_scores(target: TaskData, prior: list[TaskData]) -> np.ndarray:
    """Per row of the target's pool, its mean normalised score over the usable prior tasks (0 without any)."""
    table = prior_score_table(target, prior)
    return table.mean(axis=0) if len(table) else np.zeros(len(target))


class AverageRank(FixedOrder):
    name = "average_rank"
    uses_prior = True
    without_prior = "a seeded random order"

    def order(self) -> np.ndarray:
        return best_first(mean_prior_scores(self.target, self.prior), self.seed)


STRATEGIES.register(AverageRank.name, AverageRank)
