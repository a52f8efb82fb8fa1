"""Replay the HPO strategies leave one task out on LCBench (34 tasks x 2,000 configurations); regret@k as Markdown.

The meta-dataset is ../shared/meta-datasets/lcbench/metadataset.parquet (its README: YAHPO Gym's
LCBench surrogate, the same 2,000 configurations in every task, 52-epoch curves, costs in seconds),
read and validated by ``metahpo.hpo.metadataset.read`` like any other. Every registered strategy (or
``--strategies``) is replayed by the project's engine (``metahpo.hpo.replay``) on every held-out
task, 50 trials, 5 seeds; the table is the mean normalised regret at 1/5/10/25/50 trials with a 95%
t-interval over the 34 tasks (the prior-ranked strategies use the seed only to break ties, so an
interval over seeds would be empty), then each strategy's wall time. The issue-14 target: all of it
within 10 minutes on 2 cores. ``--configs N`` replays on a seeded sample of N configurations (the
same rows of every task) for a strategy too slow on the full pools. Not a test; run it by hand:

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/lcbench_replay.py [--strategies all --configs 2000 --out DIR]
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
from metahpo.hpo.regret_summary import markdown_regret_at, regret_at
from metahpo.hpo.replay import replay_timed
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-dataset", default=str(LCBENCH))
    parser.add_argument("--strategies", default="all", help="comma-separated names, or all")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=2000, help="configurations per task (a seeded sample)")
    parser.add_argument("--out", help="a folder to write regret.parquet to")
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


if __name__ == "__main__":
    main()
