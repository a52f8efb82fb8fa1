"""Replay every registered HPO strategy on a large synthetic meta-dataset; print the summary and wall times.

10 tasks x 30,000 configurations (with 10-epoch curves and costs, so multi-fidelity strategies have
something to stop early), leave-one-task-out, 50 trials, 5 seeds. The target: all of it within
10 minutes on 2 CPU cores. Not a test; run it by hand:

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/hpo_replay.py [--tasks 10 --configs 30000 --out DIR ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import metahpo.hpo.strategies  # noqa: F401  registers the strategies
from metahpo.hpo import metadataset
from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.regret_summary import format_summary, summarize
from metahpo.hpo.replay import replay_timed
from metahpo.hpo.synthetic import make_synthetic
from metahpo.io import write_parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--configs", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default="all", help="comma-separated names, or all")
    parser.add_argument("--out", help="a folder to write regret.parquet to (benchmarks/transfer_targets.py reads it)")
    args = parser.parse_args()

    start = time.perf_counter()
    table, mf = make_synthetic(args.tasks, args.configs, seed=0, n_epochs=args.epochs)
    data = metadataset.from_frame(table, meta_features=mf)
    print(f"meta-dataset: {args.tasks} tasks x {args.configs} configs, built in {time.perf_counter() - start:.1f} s")

    names = STRATEGIES.names() if args.strategies == "all" else args.strategies.split(",")
    regret, seconds = replay_timed(data, names, args.trials, range(args.seeds))
    if args.out:
        write_parquet(Path(args.out) / "regret.parquet", regret)
    print()
    print(format_summary(summarize(regret)))
    print(f"\ntotal replay wall time: {sum(seconds.values()):.1f} s for {len(names)} strategies")


if __name__ == "__main__":
    main()
