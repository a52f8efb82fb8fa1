"""The strategy interface: ask / tell over a held-out task's pool of configurations.

Like an Optuna sampler, a strategy proposes the next evaluation and is told its result; unlike
one, it proposes from a finite pool (the recorded configurations of the task), which is what lets
the replay engine (``metahpo.hpo.replay``) evaluate it from a table in seconds. A strategy may read
everything about the prior tasks (other tasks' objectives, curves, costs, meta-features); of the
held-out task it sees only the configurations and the values it asked for, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from metahpo.hpo.metadataset import TaskData
from metahpo.registry import Registry


@dataclass(frozen=True)
class Query:
    index: int  # a row of the held-out task's pool
    epochs: Optional[int] = None  # a partial evaluation (multi-fidelity); None = full


class Strategy:
    """Subclass, set ``name`` (and ``uses_prior`` / ``multi_fidelity``), implement ask and tell."""

    name: ClassVar[str]
    uses_prior: ClassVar[bool] = False  # reads prior tasks (transfer / zero-shot)
    multi_fidelity: ClassVar[bool] = False  # asks for partial evaluations
    without_prior: ClassVar[str] = "without transfer"  # what a prior user does with no prior task (tune's note)

    def __init__(self, target: TaskData, prior: list[TaskData], seed: int, budget: int) -> None:
        self.target, self.prior, self.seed, self.budget = target, prior, seed, budget
        self.rng = np.random.default_rng(seed)
        self.observed: dict[int, float] = {}  # full evaluations told so far: index -> value

    def ask(self) -> Query:
        raise NotImplementedError

    def tell(self, query: Query, value: float) -> None:
        if query.epochs is None:
            self.observed[query.index] = value

    def unobserved(self) -> np.ndarray:
        mask = np.ones(len(self.target), dtype=bool)
        mask[list(self.observed)] = False
        return np.flatnonzero(mask)


def nearest_row(points: np.ndarray, rows: np.ndarray, target: np.ndarray) -> int:
    """Of ``rows`` (indices into ``points``), the one whose point is nearest ``target`` (Euclidean)."""
    return int(rows[np.argmin(((points[rows] - target) ** 2).sum(axis=1))])


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
