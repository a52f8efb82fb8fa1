"""Replay the HPO strategies leave one task out on LCBench (34 tasks x 2,000 configurations); regret@k as Markdown.

The meta-dataset is ../shared/meta-datasets/lcbench/metadataset.parquet (its README: YAHPO Gym's
LCBench surrogate, the same 2,000 configurations in every task, 52-epoch curves, costs in seconds),
read and validated by ``metahpo.hpo.metadataset.read`` like any other. Every registered strategy (or
``--strategies``) is replayed by the project's engine (``metahpo.hpo.replay``) on every held-out
task, 50 trials, 5 seeds; the table is the mean normalised regret at 1/5/10/25/50 trials with a 95%
t-interval over the 34 tasks (the prior-ranked strategies use the seed only to break ties, so an
interval over seeds would be empty), then each strategy's wall time. The issue-14 target: all of it
within 10 minutes on 2 cores. ``--configs N`` replays on a seeded sample of N configurations (the
same rows of every task) for a strategy too slow on the full pools.

``--cost-budget K`` adds a second table, on seconds rather than trials: per strategy, the median and
mean seconds to regret 0.05 and 0.01 (``--cost-targets``) over the held-out tasks x seeds, how many
runs got there, and the ratio to random search's figures (``regret_summary.cost_to_target``). Every
strategy gets the same budget in seconds on a task: K times the task's mean cost of a full
evaluation (what K full evaluations of random rows cost on average; the benchmark reads it, the
strategies never do). A trial of a multi-fidelity strategy is one partial evaluation, so counting
trials would favour it (50 one-epoch trials cost one full evaluation); counting seconds is what a
user pays. The full-fidelity strategies are the ``--trials`` replays (K well below ``--trials``, so
few of them end their trials before the budget); the multi-fidelity ones are replayed again for up
to K x epochs trials, told the trial budget whose most aggressive SH bracket costs K full evaluations
(``mf_trials``: SH plans its bracket from its trial budget, as a user would size it from theirs;
past it, SH goes on with full evaluations of new rows).
Regret counts full evaluations only; a run that has not reached a target within the budget is
censored there (the median is +inf when fewer than half reach it; the mean counts it at the budget),
and "short" counts the unreached runs whose trials ended before the budget (censored earlier still).
Not a test; run it by hand:

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/lcbench_replay.py [--strategies all --configs 2000 --out DIR]
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/lcbench_replay.py --cost-budget 50 [--cost-targets 0.05,0.01]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import metahpo.hpo.strategies  # noqa: F401  registers the strategies
from metahpo.hpo import metadataset
from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.regret_summary import cost_to_target, markdown_cost_to_target, markdown_regret_at, regret_at
from metahpo.hpo.replay import replay_timed
from metahpo.hpo.strategies.successive_halving import bracket_plan, rung_epochs
from metahpo.io import write_parquet

LCBENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "meta-datasets" / "lcbench" / "metadataset.parquet"


def sample_configs(table: pd.DataFrame, n_configs: int, seed: int = 0) -> pd.DataFrame:
    """The same ``n_configs`` row positions of every task (LCBench's row k is one configuration in all tasks)."""
    position = table.groupby("task", sort=False).cumcount()
    pool = int(position.max()) + 1
    if n_configs >= pool:
        return table
    keep = np.random.default_rng(seed).choice(pool, size=n_configs, replace=False)
    return table[position.isin(keep)].reset_index(drop=True)


def mf_trials(full_evaluations: float, n_epochs: int, eta: int = 3, min_epoch: int = 1) -> int:
    """The largest trial budget whose first SH bracket costs at most ``full_evaluations`` full evaluations.

    A query at epoch e costs e / n_epochs of a full one (the replay's charge: a promotion starts over).
    """
    rungs = rung_epochs(min_epoch, eta, n_epochs)

    def bracket_cost(trials: int) -> float:
        first, n = bracket_plan(trials, len(rungs), 10**9, eta)
        return sum((n // eta**j) * rungs[first + j] for j in range(len(rungs) - first)) / n_epochs

    # not monotone (a larger budget can switch to a deeper, cheaper-per-trial bracket): scan every budget
    # up to one query per epoch of the allowance
    fits = [t for t in range(1, int(full_evaluations * n_epochs) + 1) if bracket_cost(t) <= full_evaluations]
    return max(fits, default=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-dataset", default=str(LCBENCH))
    parser.add_argument("--strategies", default="all", help="comma-separated names, or all")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=2000, help="configurations per task (a seeded sample)")
    parser.add_argument("--out", help="a folder to write regret.parquet (and cost_regret.parquet) to")
    parser.add_argument("--cost-budget", type=float, help="seconds table: budget in full evaluations (x task mean cost)")
    parser.add_argument("--cost-targets", default="0.05,0.01", help="regret targets of the seconds table")
    args = parser.parse_args()

    start = time.perf_counter()
    table = sample_configs(pd.read_parquet(args.meta_dataset), args.configs)
    data = metadataset.from_frame(table)  # validates the schema (docs/META_DATASET.md)
    pool = len(next(iter(data.tasks.values())))
    print(f"meta-dataset: {len(data.names)} tasks x {pool} configs, read in {time.perf_counter() - start:.1f} s")

    names = STRATEGIES.names() if args.strategies == "all" else args.strategies.split(",")
    regret, seconds = replay_timed(data, names, args.trials, range(args.seeds))
    if args.out:
        write_parquet(Path(args.out) / "regret.parquet", regret)
    print(f"\nmean normalised regret, ± 95% t-interval over the {len(data.names)} held-out tasks "
          f"({args.seeds} seeds each):\n")  # fmt: skip
    print(markdown_regret_at(regret_at(regret, over="task"), order=names))
    print(f"\ntotal replay wall time: {sum(seconds.values()):.1f} s for {len(names)} strategies")
    if args.cost_budget:
        cost_table(data, regret, names, args)


def cost_table(data: metadataset.MetaDataset, regret: pd.DataFrame, names: list[str], args) -> None:
    """The seconds table: full-fidelity runs as replayed, multi-fidelity ones again on a cost-sized trial budget."""
    budgets = {name: args.cost_budget * float(np.nanmean(task.cost)) for name, task in data.tasks.items()}
    n_epochs = max(task.n_epochs for task in data.tasks.values())
    multi = [name for name in names if STRATEGIES.get(name).multi_fidelity]
    frames = [regret[~regret["strategy"].isin(multi)]]
    if multi:
        trials, planned = int(args.cost_budget * n_epochs), mf_trials(args.cost_budget, n_epochs)
        print(f"\nmulti-fidelity strategies again, up to {trials} trials, told {planned} (one SH bracket = "
              f"{args.cost_budget:g} full evaluations):")  # fmt: skip
        again, _ = replay_timed(data, multi, trials, range(args.seeds), budget=planned)
        frames.append(again)
    both = pd.concat(frames, ignore_index=True)
    if args.out:
        write_parquet(Path(args.out) / "cost_regret.parquet", both)
    targets = [float(t) for t in args.cost_targets.split(",")]
    table = cost_to_target(both, budgets, targets)
    print(f"\nseconds to normalised regret {' / '.join(f'{t:g}' for t in targets)} over the {len(data.names)} held-out "
          f"tasks x {args.seeds} seeds, within a budget of {args.cost_budget:g} x the task's mean full cost "
          f"(median {np.median(list(budgets.values())):.0f} s); unreached runs: inf for the median, the budget for "
          "the mean; share = mean seconds / budget per run (unreached 1); "
          "ratios = median / mean / share over random's:\n")  # fmt: skip
    print(markdown_cost_to_target(table, order=names))


if __name__ == "__main__":
    main()
