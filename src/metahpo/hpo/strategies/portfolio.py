"""``portfolio``: the greedy zero-shot portfolio (Feurer et al. 2015; Wistuba et al. 2015), then average_rank.

On the prior tasks' normalised scores of the target's pool (``prior_table``, the table average_rank
reads), configurations are picked one at a time, each the one that most raises the mean over prior
tasks of the best score in the portfolio so far (``prior_table.greedy_portfolio``, fit_meta's
portfolio ranker too); ties go to the row average_rank puts first. Once no configuration raises it
(every prior task has its best in the portfolio: at most one pick per prior task), every row ties,
so the rest of the pool follows in average_rank's order. No feedback: the held-out task's values are
never read.
"""

from __future__ import annotations

import numpy as np

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.prior_table import greedy_portfolio, prior_score_table
from metahpo.hpo.strategies.average_rank import AverageRank


class Portfolio(AverageRank):
    name = "portfolio"

    def order(self) -> np.ndarray:
        by_rank = super().order()
        table = prior_score_table(self.target, self.prior)[:, by_rank]  # columns in average_rank's order
        if len(table) == 0:
            return by_rank
        picks = by_rank[greedy_portfolio(table, self.budget)]
        return np.concatenate([picks, by_rank[~np.isin(by_rank, picks)]])


STRATEGIES.register(Portfolio.name, Portfolio)
