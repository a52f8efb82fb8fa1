"""``tpe``: Optuna's TPESampler (ask-and-tell) over the target's space, each suggestion snapped to the pool.

The space: one distribution per hyperparameter, built from the target's recorded (raw) values:
  - a categorical hyperparameter (strings or booleans, one-hot in ``TaskData.encoding``):
    CategoricalDistribution over the pool's categories, never a float;
  - CategoricalDistribution over the distinct values when there are at most ``max_categories`` of
    them (a swept grid of a few values: TPE then models each value's own success rate);
  - otherwise FloatDistribution(low, high, log=True) where the meta-dataset's encoding is log10
    (``TaskData.encoding``: the declared flag, else the two-decade rule), else FloatDistribution(low, high).

A suggestion is mapped to the nearest unobserved row of the pool, measured in that same space made
comparable across hyperparameters: log10 where log, then rescaled by the pool's min / max to [0, 1]
(a value of a numeric CategoricalDistribution is placed at its numeric position; a categorical
hyperparameter is one-hot, so a row of another category is farther, squared distance 2, than any
numeric difference, at most 1 per column: the suggested category is asked while unasked rows have
it). Optuna is told the value of the row actually evaluated, under the suggested params: the
standard way to run TPE on a finite pool (the density model learns where good values are; the pool
decides what can be evaluated). A failed row
(NaN) is told as TrialState.FAIL, which TPE leaves out of its model.
"""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from metahpo.hpo.base import STRATEGIES, Query, Strategy, nearest_row

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TPE(Strategy):
    name = "tpe"

    def __init__(self, target, prior, seed, budget, max_categories: int = 8, n_startup_trials: int = 10) -> None:
        super().__init__(target, prior, seed, budget)
        self.distributions: dict[str, BaseDistribution] = {}
        categorical = {name for name, cats in zip(target.encoding.names, target.encoding.categories) if cats}
        log_scale = dict(zip(target.encoding.names, target.encoding.log))
        self._numeric = [c for c in target.raw.columns if c not in categorical]
        self._choices: dict[str, list] = {}  # categorical column -> the pool's categories, sorted
        log, lows, spans = [], [], []
        for column in target.raw.columns:
            if column in categorical:
                self._choices[column] = sorted(set(target.raw[column].dropna()))
                self.distributions[column] = CategoricalDistribution(self._choices[column])
                continue
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
        self._pool = self._points(target.raw)
        self._free = np.ones(len(target), dtype=bool)  # rows not asked yet
        self._pending: dict[int, optuna.trial.Trial] = {}  # asked row -> the trial that suggested it
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)

    def _points(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows in the snapping space: numeric columns scaled to [0, 1], each categorical one one-hot."""
        values = frame[self._numeric].to_numpy(dtype=float)
        values = np.where(self._log, np.log10(np.where(self._log, values, 1.0)), values)
        one_hot = [frame[c].to_numpy(dtype=object)[:, None] == np.array(choices, dtype=object)[None, :]
                   for c, choices in self._choices.items()]  # fmt: skip
        return np.hstack([(values - self._low) / self._span, *one_hot]).astype(float)

    def ask(self) -> Query:
        trial = self.study.ask(self.distributions)
        suggestion = self._points(pd.DataFrame([trial.params]))[0]
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
