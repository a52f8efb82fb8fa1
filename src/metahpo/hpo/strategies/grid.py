"""``grid``: the pool in row order; ``FixedOrder``, the base of every strategy that asks a fixed order, and
``best_first``, the order of the prior-ranked ones (zero_shot, average_rank, portfolio).

The rows of a task are its sweep in the order it was run and recorded (``metahpo.stages.sweep``: the grid
points, the product over hyperparameters in the space's order, then the seeded random trials), so
the table's order is the grid's own order and ``grid`` replays what the recorded sweep itself did.
The order does not depend on the strategy's seed.
"""

from __future__ import annotations

import numpy as np

from metahpo.hpo.base import STRATEGIES, Query, Strategy


def best_first(scores: np.ndarray, seed: int) -> np.ndarray:
    """The rows by ``scores``, highest first; ties (e.g. no prior at all) in a seeded random order."""
    tie_break = np.random.default_rng(seed).permutation(len(scores))
    return np.lexsort((tie_break, -np.asarray(scores)))


class FixedOrder(Strategy):
    """Asks the rows of ``order()`` one by one at full fidelity, ignoring the values it is told."""

    def __init__(self, target, prior, seed, budget) -> None:
        super().__init__(target, prior, seed, budget)
        self._order = np.asarray(self.order(), dtype=int)
        self._next = 0

    def order(self) -> np.ndarray:
        """A permutation of the pool's rows."""
        raise NotImplementedError

    def ask(self) -> Query:
        index = int(self._order[self._next])
        self._next += 1
        return Query(index)


class Grid(FixedOrder):
    name = "grid"

    def order(self) -> np.ndarray:
        return np.arange(len(self.target))


STRATEGIES.register(Grid.name, Grid)
