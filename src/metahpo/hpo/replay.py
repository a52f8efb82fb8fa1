"""The replay engine: evaluate a strategy leave-one-task-out on a meta-dataset, from the table.

Each query of the held-out task is answered from its recorded row (the full objective, or the
curve's value at the asked epoch for a partial evaluation) and costs the recorded seconds (a
fraction of them for a partial one). Normalised regret of the best-so-far, per trial:
    (best in table - best found) / (best in table - worst in table)
where "found" counts full evaluations only and is the worst (regret 1) before the first one.
Failed rows (NaN objective) are never the best: they count as the task's worst. (The regret
functions live in ``metahpo.hpo.metadataset``: ``regret``, the one definition fit_meta uses too.) The strategy
sees the held-out task through ``MetaDataset.fold``: configurations only, meta-features
standardised with the prior tasks' scaler, as a new task's would be.
"""

from __future__ import annotations

import math
import time
from typing import Iterable, Optional

import pandas as pd

from metahpo.errors import MetahpoError
from metahpo.hpo.base import STRATEGIES, Query, Strategy
from metahpo.hpo.metadataset import MetaDataset, TaskData, pool_regret, regret, regret_scale  # noqa: F401  (re-exported)


def answer(task: TaskData, query: Query) -> tuple[float, float, bool]:
    """(value, cost, full?) of a query, read from the held-out task's recorded row."""
    full_cost = float(task.cost[query.index]) if task.cost is not None else 1.0
    curve = task.curves[query.index] if task.curves is not None else None
    # full means the task's full fidelity, so a strategy always knows which answers were full;
    # a run that stopped early (a short curve) answers a later epoch with its last value
    if query.epochs is None or query.epochs >= task.n_epochs or curve is None or len(curve) == 0:
        return float(task.y[query.index]), full_cost, True
    epochs = min(max(1, int(query.epochs)), len(curve))
    return float(curve[epochs - 1]), full_cost * epochs / len(curve), False


def replay(
    strategy: type[Strategy], data: MetaDataset, task: str, seed: int, trials: int, budget: Optional[int] = None
) -> pd.DataFrame:
    """Run one strategy on one held-out task; one row per trial.

    ``budget``: the trial budget the strategy is told (default ``trials``), where it plans for fewer
    trials than the replay may run (the seconds table of benchmarks/lcbench_replay.py).
    """
    target = data.tasks[task]
    hidden, prior = data.fold(task)  # meta-features standardised on the prior tasks alone
    regret_scale(target)  # fails early on a task with nothing to compare against
    trials = min(trials, len(target) * (target.n_epochs if strategy.multi_fidelity else 1))
    runner = strategy(hidden, prior, seed, min(trials, budget) if budget else trials)
    found, cost, rows, asked_full = -math.inf, 0.0, [], set()
    for trial in range(1, trials + 1):
        query = runner.ask()
        if query.epochs is None and query.index in asked_full:
            raise MetahpoError(f"strategy {strategy.name!r} asked for configuration {query.index} twice")
        value, query_cost, full = answer(target, query)
        runner.tell(query, value)
        cost += query_cost
        if full:
            asked_full.add(query.index)
            if math.isfinite(value):
                found = max(found, value)
        epochs = query.epochs or target.n_epochs
        rows.append((strategy.name, task, seed, trial, regret(target, found), cost, query.index, epochs))
        if len(asked_full) == len(target):
            break  # the whole pool is evaluated
    return pd.DataFrame(rows, columns=["strategy", "task", "seed", "trial", "regret", "cost", "index", "epochs"])


def replay_strategies(
    data: MetaDataset,
    strategies: Iterable[str],
    trials: int,
    seeds: Iterable[int],
    tasks: Optional[Iterable[str]] = None,
    progress: bool = True,
    budget: Optional[int] = None,
) -> pd.DataFrame:
    """Every strategy x held-out task x seed; the regret table (strategy, task, seed, trial, regret, cost, ...)."""
    from tqdm.auto import tqdm

    import metahpo.hpo.strategies  # noqa: F401  registers the strategies

    classes = [STRATEGIES.get(name) for name in strategies]
    tasks = list(tasks or data.names)
    runs = [(cls, task, seed) for cls in classes for task in tasks for seed in seeds]
    frames = []
    for cls, task, seed in tqdm(runs, desc="replay", unit="run", disable=not progress):
        frames.append(replay(cls, data, task, seed, trials, budget))
    return pd.concat(frames, ignore_index=True)


def replay_timed(
    data: MetaDataset, strategies: Iterable[str], trials: int, seeds: Iterable[int], log=None,
    budget: Optional[int] = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """``replay_strategies`` one strategy at a time: the regret table and each one's wall seconds, logged as it ends."""
    log = log or (lambda line: print(line, flush=True))  # a long benchmark shows each strategy as it ends
    frames, seconds, seeds = [], {}, list(seeds)
    for name in strategies:
        start = time.perf_counter()
        frames.append(replay_strategies(data, [name], trials, seeds, progress=False, budget=budget))
        seconds[name] = time.perf_counter() - start
        runs = len(data.names) * len(seeds)
        log(f"{name:>12}: {seconds[name]:7.1f} s wall ({seconds[name] / runs:.2f} s per run)")
    return pd.concat(frames, ignore_index=True), seconds
