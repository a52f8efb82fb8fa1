"""``tpe``: Optuna's TPESampler (ask-and-tell) over the target's space, each suggestion snapped to the pool.

The space: one distribution per hyperparameter, built from the target's recorded (raw) values:
  - CategoricalDistribution over the distinct values when there are at most ``max_categories`` of
    them (a swept grid of a few values: TPE then models each value's own success rate);
  - otherwise FloatDistribution(low, high, log=True) where the meta-dataset's encoding is log10
    (``TaskData.encoding``: the declared flag, else the two-decade rule), else FloatDistribution(low, high).

A suggestion is mapped to the nearest unobserved row of the pool, measured in that same space made
comparable across hyperparameters: log10 where log, then rescaled by the pool's min / max to [0, 1]
(a categorical value is placed at its numeric position). Optuna is told the value of the row
actually evaluated, under the suggested params: the standard way to run TPE on a finite pool (the
density model learns where good values are; the pool decides what can be evaluated). A failed row
(NaN) is told as TrialState.FAIL, which TPE leaves out of its model.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from metahpo.hpo.base import STRATEGIES, Query, Strategy, nearest_row

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TPE(Strategy):
    name = "tpe"

    def __init__(self, target, prior, seed, budget, max_categories: int = 8, n_startup_trials: int = 10) -> None:
        super().__init__(target, prior, seed, budget)
        self.distributions: dict[str, BaseDistribution] = {}
        log, lows, spans = [], [], []
        log_scale = dict(zip(target.encoding.names, target.encoding.log))
        for column in target.raw.columns:
            values = target.raw[column].to_numpy(dtype=float)
            low, high = float(values.min()), float(values.max())
            is_log = log_scale[column]
            distinct = np.unique(values)
            if len(distinct) <= max_categories:
                self.distributions[column] = CategoricalDistribution([float(v) for v in distinct])
            else:
                self.distributions[column] = FloatDistribution(low, high, log=is_log)
            scaled = np.log10([low, high]) if is_log else np.array([low, high])
            log.append(is_log)
            lows.append(scaled[0])
            spans.append(scaled[1] - scaled[0] if scaled[1] > scaled[0] else 1.0)
        self._log, self._low, self._span = np.array(log), np.array(lows), np.array(spans)
        self._pool = self._scale(target.raw.to_numpy(dtype=float))
        self._free = np.ones(len(target), dtype=bool)  # rows not asked yet
        self._pending: dict[int, optuna.trial.Trial] = {}  # asked row -> the trial that suggested it
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)

    def _scale(self, values: np.ndarray) -> np.ndarray:
        values = np.where(self._log, np.log10(np.where(self._log, values, 1.0)), values)
        return (values - self._low) / self._span

    def ask(self) -> Query:
        trial = self.study.ask(self.distributions)
        suggestion = self._scale(np.array([trial.params[c] for c in self.distributions], dtype=float))
        free = np.flatnonzero(self._free)
        index = nearest_row(self._pool, free, suggestion)
        self._free[index] = False
        self._pending[index] = trial
        return Query(index)

    def tell(self, query: Query, value: float) -> None:
        super().tell(query, value)
        trial = self._pending.pop(query.index)
        if np.isfinite(value):
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=TrialState.FAIL)


STRATEGIES.register(TPE.name, TPE)
