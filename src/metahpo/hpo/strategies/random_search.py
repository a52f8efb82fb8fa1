"""``random``: random search over the pool, a seeded permutation of its rows (without replacement)."""

from __future__ import annotations

import numpy as np

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.strategies.grid import FixedOrder


class RandomSearch(FixedOrder):
    name = "random"

    def order(self) -> np.ndarray:
        return self.rng.permutation(len(self.target))


STRATEGIES.register(RandomSearch.name, RandomSearch)
