"""A strategy against a baseline on the benchmark stage's output: the issue's targets, and how fine the objective is.

Reads ``results/benchmark/`` (run the benchmark stage first) and prints, per family and pooled over
every task of the run (regret is normalised per task, so pooling is meaningful):
- median trials to regret <= 0.01 and <= 0.05 of the strategy and the baseline, and their ratio;
- mean regret@5 of both, and its ratio;
and per task, the objective's resolution as the stage recorded it in summary.json
(``metahpo.hpo.regret_summary.objective_resolution``): the regret of one validation example and the share of
the pool within each regret target. A target below one validation example asks for an exact top tie.
Not a test; run it by hand:

    python benchmarks/strategy_targets.py [--out results/benchmark] [--strategy weighted_portfolio --baseline random]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from metahpo.hpo.regret_summary import TARGETS, regret_at, time_to_target_summary


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmark", help="the benchmark stage's folder")
    parser.add_argument("--strategy", default="weighted_portfolio")
    parser.add_argument("--baseline", default="random")
    args = parser.parse_args()
    out = Path(args.out)
    regret = pd.read_parquet(out / "regret.parquet")
    print(f"{out / 'regret.parquet'}: {regret['task'].nunique()} tasks, {regret['seed'].nunique()} seeds, "
          f"{regret['trial'].max()} trials")
    pooled = regret.assign(task=regret["family"] + "/" + regret["task"])
    tables, resolution = [], []
    for family, group in [*regret.groupby("family", sort=False), ("all tasks", pooled)]:
        tables += [{"family": family, **row} for row in target_rows(group, args.strategy, args.baseline)]
    for family, entry in json.loads((out / "summary.json").read_text())["families"].items():
        resolution += [{"family": family, **row} for row in entry.get("resolution") or []]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(tables).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print()
        columns = ["family", "task", "pool", "n_validation", "one_example", *(f"within_{t:g}" for t in TARGETS)]
        print(pd.DataFrame(resolution, columns=columns).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
