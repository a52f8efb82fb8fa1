"""A strategy against a baseline on the benchmark stage's output: the issue's targets, and how fine the objective is.

Reads ``results/benchmark/`` (run the benchmark stage first) and prints, per family and pooled over
every task of the run (regret is normalised per task, so pooling is meaningful):
- median trials to regret <= 0.01 and <= 0.05 of the strategy and the baseline, and their ratio;
- mean regret@5 of both, and its ratio;
and per task, the objective's resolution: the regret of one validation example, 1 / n_validation
divided by (best - worst) (from the exported meta-features' ``mf.n_validation``), and the share of the
pool within each regret target. A target below one validation example asks for an exact top tie.
Not a test; run it by hand:

    python benchmarks/strategy_targets.py [--out results/benchmark] [--strategy transfer_bo --baseline random]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from metahpo.benchmark import EXPORT
from metahpo.hpo.metrics import regret_at, time_to_target_summary

TARGETS = (0.05, 0.01)


def target_rows(regret: pd.DataFrame, strategy: str, baseline: str) -> list[dict]:
    at5 = regret_at(regret, checkpoints=(5,)).set_index("strategy")["regret"]
    reach = time_to_target_summary(regret, TARGETS).set_index(["strategy", "target"])
    rows = []
    for target in TARGETS:
        ours, theirs = reach.loc[(strategy, target), "median_trials"], reach.loc[(baseline, target), "median_trials"]
        rows.append({"figure": f"median trials to regret <= {target:g}", strategy: ours, baseline: theirs,
                     "ratio": ours / theirs if math.isfinite(theirs) and theirs > 0 else math.nan})  # fmt: skip
    rows.append({"figure": "regret@5", strategy: at5[strategy], baseline: at5[baseline],
                 "ratio": at5[strategy] / at5[baseline] if at5[baseline] > 0 else math.nan})  # fmt: skip
    return rows


def resolution_rows(out: Path, family: str) -> list[dict]:
    table = pd.read_parquet(out / EXPORT / f"metadataset-{family}.parquet")
    mf_path = out / EXPORT / f"metafeatures-{family}.parquet"
    n_val = pd.read_parquet(mf_path).set_index("task").get("mf.n_validation") if mf_path.is_file() else None
    rows = []
    for task, group in table.groupby("task", sort=False):
        y = group["objective"].to_numpy(dtype=float)
        best, worst = np.nanmax(y), np.nanmin(y)
        regret = np.where(np.isfinite(y), (best - y) / (best - worst), 1.0)
        row = {"family": family, "task": task, "pool": len(y)}
        if n_val is not None and task in n_val.index and n_val[task] > 0:
            row["n_validation"] = int(n_val[task])
            row["one example (regret)"] = 1.0 / n_val[task] / (best - worst)
        for target in TARGETS:
            row[f"pool within {target:g}"] = float((regret <= target + 1e-12).mean())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmark", help="the benchmark stage's folder")
    parser.add_argument("--strategy", default="transfer_bo")
    parser.add_argument("--baseline", default="random")
    args = parser.parse_args()
    out = Path(args.out)
    regret = pd.read_parquet(out / "regret.parquet")
    seeds = regret["seed"].nunique()
    print(f"{out / 'regret.parquet'}: {regret['task'].nunique()} tasks, {seeds} seeds, {regret['trial'].max()} trials")
    pooled = regret.assign(task=regret["family"] + "/" + regret["task"])
    tables, resolution = [], []
    for family, group in [*regret.groupby("family", sort=False), ("all tasks", pooled)]:
        tables += [{"family": family, **row} for row in target_rows(group, args.strategy, args.baseline)]
        if family != "all tasks":
            resolution += resolution_rows(out, family)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(tables).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print()
        print(pd.DataFrame(resolution).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
