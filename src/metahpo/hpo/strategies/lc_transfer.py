"""``lc_transfer``: ASHA over the prior order, stopping and promoting by the prior tasks' learning curves.

Asynchronous successive halving (``successive_halving.AsynchronousSuccessiveHalving``: the same
rungs, brackets and promotions) with these changes, all read from the prior tasks alone:

- **Starts in the portfolio's order** (``portfolio``: the greedy portfolio over ``prior_table``, then
  average_rank's order), not a random or zero-shot one: on LCBench the model-free table beat the
  zero-shot forest at every trial budget (docs/PERFORMANCE.md).
- **The first start is evaluated in full** (and each next one until a finite full result exists):
  the prior's best guess is usually good, and waiting for ASHA to bring a configuration through
  every rung costs about six full evaluations first.
- **Curve-based stopping and promotion.** For a configuration at epoch e with value v, the prior
  tasks say how much that same configuration (the nearest one they ran, as ``prior_table``) still
  gained after epoch e: ``prior_table.prior_curve_gains``, final - curve[e], one gain per prior task.
  Against the incumbent (the best full result so far):
  if v + the ``STOP_QUANTILE`` quantile of those gains (an optimistic final) is below it, the
  configuration is stopped (never promoted); if v + their ``GO_QUANTILE`` quantile (a typical final)
  reaches it, the configuration goes straight to the full fidelity, skipping the rungs between (the
  replay charges a re-ask from scratch, so each skipped rung is saved). Otherwise ASHA's rule decides
  (top 1/eta of the rung so far). Gains are in the objective's units, read per configuration.
- **Rungs from epoch 3** (3, 9, 27, then the full fidelity, eta 3): one epoch says too little.

Why, measured on LCBench (benchmarks/lcbench_replay.py's seconds table, 34 tasks leave one out, one
seed, a budget of 25 mean full evaluations per task; the mean share of the budget spent to regret
0.05 / 0.01, unreached runs counted as the whole budget): this strategy 0.152 / 0.295; without the
curve rule (ASHA over the portfolio, first start in full) 0.183 / 0.376; with average_rank's order
instead of the portfolio's 0.183 / 0.407; the portfolio itself, every configuration in full, 0.216 /
0.396; asha 0.648 / 0.860. Rungs from epoch 1 were worse (0.01: 0.45 of the mean seconds of random
search against 0.30): on 4 tasks the configuration that took the portfolio to 0.01 was stopped at
epoch 1. From epoch 2, 3 or 5 the figures are within a few percent of each other, and so are stop
quantiles 0.75-1.0 with go quantiles 0.25-0.9 (0.30-0.35 of random's mean seconds to 0.01): 0.9 and
0.5 sit inside that plateau, not on a tuned peak. On the synthetic
meta-dataset, whose optimum moves with a meta-feature, it needs far less than asha (tests) but more
than asha_warm: the portfolio's order ignores meta-features, the zero-shot forest reads them.

Without prior curves (or prior tasks) there is nothing to predict with, and it is ASHA over the
portfolio's order (a seeded random one without prior tasks) with the first start in full.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import numpy as np

from metahpo.hpo.base import STRATEGIES, Query
from metahpo.hpo.prior_table import prior_curve_gains
from metahpo.hpo.strategies.portfolio import Portfolio
from metahpo.hpo.strategies.successive_halving import AsynchronousSuccessiveHalving

STOP_QUANTILE = 0.9
GO_QUANTILE = 0.5
MIN_EPOCH = 3


class CurveTransfer(AsynchronousSuccessiveHalving):
    name = "lc_transfer"
    uses_prior = True
    without_prior = "ASHA on a seeded random order, its first start in full"
    stop_quantile = STOP_QUANTILE
    go_quantile = GO_QUANTILE
    min_epoch = MIN_EPOCH

    def __init__(self, target, prior, seed, budget, eta: int = 3, min_epoch: Optional[int] = None) -> None:
        super().__init__(target, prior, seed, budget, eta, int(min_epoch or self.min_epoch))
        # (prior tasks, rows, rungs below the full one); empty without prior curves
        self._gains = prior_curve_gains(target, prior, tuple(self.rungs[:-1]))
        self._incumbent = -np.inf  # the best finite full result so far
        self._undecided: dict[int, float] = {}  # row -> optimistic final, of partial results ASHA decides
        self._go: deque = deque()  # (row, optimistic, typical final): partial results going to the full fidelity

    def start_order(self) -> np.ndarray:
        return Portfolio(self.target, self.prior, self.seed, self.budget).order()

    def tell(self, query: Query, value: float) -> None:
        super().tell(query, value)
        if query.epochs is None:
            if value > self._incumbent:  # False for NaN
                self._incumbent = value
                for row, optimistic in list(self._undecided.items()):
                    if optimistic < value:
                        self._retire(row)
            return
        self._undecided.pop(query.index, None)  # promoted by ASHA: its new result decides
        bounds = self._final_bounds(query.index, self.rungs.index(query.epochs), value)
        if bounds is None:
            return  # a failed run, or no prior curves: ASHA's rule alone
        optimistic, typical = bounds
        if optimistic < self._incumbent:
            self._retire(query.index)
        elif typical >= self._incumbent:
            self._go.append((query.index, optimistic, typical))
        else:
            self._undecided[query.index] = optimistic

    def _final_bounds(self, row: int, rung: int, value: float) -> Optional[tuple[float, float]]:
        """(optimistic, typical) final value of ``row`` from its finite ``value`` at ``rung``; else None."""
        gains = self._gains[:, row, rung] if len(self._gains) and np.isfinite(value) else np.array([])
        gains = gains[np.isfinite(gains)]
        if len(gains) == 0:
            return None
        optimistic, typical = np.quantile(gains, [self.stop_quantile, self.go_quantile])
        return value + optimistic, value + typical

    def _retire(self, row: int) -> None:
        """ASHA never promotes ``row`` again (stopped, or sent to the full fidelity).

        A stopped row's place in its rung's top 1/eta stays spent: ASHA promotes no one else for it.
        """
        self._undecided.pop(row, None)
        if self._bracket is not None:  # None once every row is started (SH's _best_unfinished)
            for rung in range(self.top):
                self._bracket.promoted.setdefault(rung, set()).add(row)

    def _next_in_bracket(self) -> Optional[tuple[int, int]]:
        bracket = self._bracket
        if not np.isfinite(self._incumbent) and bracket.starts:
            row = bracket.starts.popleft()  # until a full result exists, the prior's next guess is evaluated in full
            self._retire(row)
            return row, self.top
        while self._go:
            row, optimistic, typical = self._go.popleft()
            if typical >= self._incumbent:  # the incumbent may have risen since
                self._retire(row)
                return row, self.top
            if optimistic < self._incumbent:
                self._retire(row)
            else:
                self._undecided[row] = optimistic  # no longer sure: ASHA decides
        return super()._next_in_bracket()


STRATEGIES.register(CurveTransfer.name, CurveTransfer)
