"""``sh`` / ``asha`` (and the warm-started ``sh_warm`` / ``asha_warm``): successive halving on the curves.

Rungs are at epochs ``min_epoch * eta**k`` below the target's ``n_epochs``, plus ``n_epochs`` itself
(the full fidelity, asked as ``Query(index, None)``); the replay answers a partial query from the
recorded curve at that epoch, for that fraction of the cost. Every trial is one query, partial or
full, and a promotion re-asks the same configuration at the next rung.

Bracket: with B trials left, the most aggressive bracket that fits is used: the lowest first rung
such that ``eta**depth`` configurations can go through it (``depth`` = rungs above the first one),
then as many starting configurations n as keep ``sum_j n // eta**j <= B`` (and as there are unstarted
rows). When a bracket ends with trials left, the next one is planned the same way from the
configurations not started yet (with few trials left it is a bracket of full evaluations only); when
every row has been started, the remaining trials evaluate the started configurations at full fidelity,
best partial result first (highest rung, then value). Failed (NaN) results are never promoted, and
are the last to be evaluated in full.

``sh`` is synchronous: a rung is finished before its best ``1/eta`` are promoted, best first.
``asha`` is asynchronous SH run sequentially, as the replay does: before starting a new configuration,
it promotes (highest rung first) any configuration in the top ``1/eta`` of the results a rung has so
far, so it reaches the full fidelity after a few trials instead of at the end of the bracket; the
price is that a configuration promoted early on few results may not be in the rung's final top, so
ASHA can spend a few more trials than planned (the replay stops at the budget anyway).

Starting configurations are a seeded random order of the pool; ``*_warm`` takes them from the top
of the ``zero_shot`` ranking instead. Without curves (``n_epochs == 1``) the only rung is the full one
and both reduce to that order: random search (or zero-shot).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from metahpo.hpo.base import STRATEGIES, Query, Strategy
from metahpo.hpo.strategies.zero_shot import prior_order


def rung_epochs(min_epoch: int, eta: int, n_epochs: int) -> list[int]:
    """min_epoch, min_epoch * eta, ... below n_epochs, then n_epochs (the full fidelity)."""
    epochs, epoch = [], min_epoch
    while epoch < n_epochs:
        epochs.append(epoch)
        epoch *= eta
    return epochs + [n_epochs]


def bracket_plan(budget: int, n_rungs: int, n_unstarted: int, eta: int) -> Optional[tuple[int, int]]:
    """(first rung, configurations to start) of the most aggressive bracket that fits; None if none does."""
    for first in range(n_rungs):
        depth = n_rungs - 1 - first

        def trials(n: int) -> int:
            return sum(n // eta**j for j in range(depth + 1))

        n = eta**depth  # the fewest starts that bring one configuration to the full fidelity
        if n > n_unstarted or trials(n) > budget:
            continue
        n = max(n, min(n_unstarted, int(budget / sum(eta**-j for j in range(depth + 1)))))
        while trials(n) > budget:
            n -= 1
        while n < n_unstarted and trials(n + 1) <= budget:
            n += 1
        return first, n
    return None


@dataclass
class Bracket:
    first: int  # the rung it starts at
    n_start: int
    starts: deque  # configurations still to start at the first rung
    results: dict[int, dict[int, float]] = field(default_factory=dict)  # rung -> {row: value}
    promoted: dict[int, set] = field(default_factory=dict)  # rung -> rows promoted from it
    _ranked: dict[int, list[int]] = field(default_factory=dict)  # rung -> ranked(rung), until its next result

    def record(self, rung: int, row: int, value: float) -> None:
        self.results.setdefault(rung, {})[row] = value
        self._ranked.pop(rung, None)

    def ranked(self, rung: int) -> list[int]:
        """The rung's rows with a finite result, best first (shared: do not modify)."""
        if rung not in self._ranked:  # asha asks it of every rung at every trial: sort once per new result
            done = self.results.get(rung, {})
            self._ranked[rung] = sorted((i for i, v in done.items() if math.isfinite(v)), key=lambda i: -done[i])
        return self._ranked[rung]


class SuccessiveHalving(Strategy):
    name = "sh"
    multi_fidelity = True

    def __init__(self, target, prior, seed, budget, eta: int = 3, min_epoch: int = 1) -> None:
        super().__init__(target, prior, seed, budget)
        self.eta = eta
        self.rungs = rung_epochs(min_epoch, eta, target.n_epochs)
        self.top = len(self.rungs) - 1
        self._unstarted = deque(int(i) for i in self.start_order())
        self._asked = 0
        self._latest: dict[int, tuple[int, float]] = {}  # row -> (rung, value) of its latest result
        self._bracket: Optional[Bracket] = None
        self._level = 0  # sh: the rung the bracket is evaluating
        self._queue: deque = deque()  # sh: rows left to evaluate at that rung

    def start_order(self) -> np.ndarray:
        return self.rng.permutation(len(self.target))

    def ask(self) -> Query:
        found = self._next_in_bracket() if self._bracket is not None else None
        while found is None and self._new_bracket():
            found = self._next_in_bracket()
        self._asked += 1
        if found is None:
            return self._best_unfinished()
        index, rung = found
        return Query(index, None if rung == self.top else self.rungs[rung])

    def tell(self, query: Query, value: float) -> None:
        rung = self.top if query.epochs is None else self.rungs.index(query.epochs)
        if rung == self.top:
            self.observed[query.index] = value
        self._latest[query.index] = (rung, value)
        if self._bracket is not None:
            self._bracket.record(rung, query.index, value)

    def _new_bracket(self) -> bool:
        # asked past its budget (only outside the replay), it goes on with full evaluations of new rows
        budget_left = max(1, self.budget - self._asked)
        plan = bracket_plan(budget_left, len(self.rungs), len(self._unstarted), self.eta)
        if plan is None:
            self._bracket = None
            return False
        first, n_start = plan
        starts = deque(self._unstarted.popleft() for _ in range(n_start))
        self._bracket = Bracket(first, n_start, starts)
        self._level, self._queue = first, starts
        return True

    def _next_in_bracket(self) -> Optional[tuple[int, int]]:
        """(row, rung) of the bracket's next query, or None when the bracket is over."""
        bracket = self._bracket
        while not self._queue:  # the rung is finished: promote its best 1/eta, best first
            if self._level == self.top:
                return None
            keep = bracket.n_start // self.eta ** (self._level + 1 - bracket.first)
            self._queue = deque(bracket.ranked(self._level)[:keep])
            self._level += 1
            if not self._queue:
                return None
        return self._queue.popleft(), self._level

    def _best_unfinished(self) -> Query:
        """Every row is started: the full evaluation of the best one not evaluated in full yet.

        A row that failed at a partial fidelity (NaN) comes last.
        """
        unfinished = [i for i in self._latest if i not in self.observed]

        def rung_then_value(index: int) -> tuple[bool, int, float]:
            rung, value = self._latest[index]
            return bool(np.isfinite(value)), rung, value if np.isfinite(value) else -np.inf

        return Query(max(unfinished, key=rung_then_value), None)


class AsynchronousSuccessiveHalving(SuccessiveHalving):
    name = "asha"

    def _next_in_bracket(self) -> Optional[tuple[int, int]]:
        bracket = self._bracket
        for rung in range(self.top - 1, bracket.first - 1, -1):
            promotable = bracket.ranked(rung)[: len(bracket.results.get(rung, {})) // self.eta]
            promoted = bracket.promoted.setdefault(rung, set())
            waiting = [i for i in promotable if i not in promoted]
            if waiting:
                promoted.add(waiting[0])
                return waiting[0], rung + 1
        if bracket.starts:
            return bracket.starts.popleft(), bracket.first
        return None


class WarmStart:
    """Mixin: the starting configurations are the top of the zero_shot ranking, not random ones."""

    uses_prior = True

    def start_order(self) -> np.ndarray:
        return prior_order(self.target, self.prior, self.seed)


class SuccessiveHalvingWarm(WarmStart, SuccessiveHalving):
    name = "sh_warm"
    without_prior = "successive halving on a seeded random order"


class AsynchronousSuccessiveHalvingWarm(WarmStart, AsynchronousSuccessiveHalving):
    name = "asha_warm"
    without_prior = "ASHA on a seeded random order"


for strategy in (
    SuccessiveHalving, AsynchronousSuccessiveHalving, SuccessiveHalvingWarm, AsynchronousSuccessiveHalvingWarm
):
    STRATEGIES.register(strategy.name, strategy)
