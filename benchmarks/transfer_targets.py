"""Issue 14's targets for a transfer strategy, checked on regret tables of any meta-dataset.

Reads regret tables (``strategy, task, seed, trial, regret``: what ``lcbench_replay.py --out``,
``hpo_replay.py --out`` and the benchmark stage's ``results/benchmark/regret.parquet`` write; a
``family`` column makes task names ``family/task``, so the pipeline's families pool) and prints, per
table, the mean regret at 1 / 5 / 10 / 25 / 50 trials (each task's mean over seeds, then over tasks)
of the strategy and of each baseline, and whether:
- the strategy's regret is at most the best baseline's at every budget, strictly below at 10 or more;
- its regret@50 is at most half its regret@10 (it keeps improving);
- gp_bo's regret@5 is at most random search's;
with the paired per-task comparison against the best baseline (better / worse tasks, Wilcoxon p).
Budgets a table does not reach (a pool smaller than the budget ends the runs) use the last trial.
Not a test; run it by hand:

    python benchmarks/transfer_targets.py lcbench=/tmp/lc/regret.parquet[,/tmp/lc2/regret.parquet] \\
        synthetic=/tmp/syn/regret.parquet pipeline=results/benchmark/regret.parquet [--strategy weighted_portfolio]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from metahpo.hpo.regret_summary import CHECKPOINTS, replicate_means

BASELINES = ("average_rank", "portfolio", "zero_shot", "tpe", "random")


def per_task(regret: pd.DataFrame) -> pd.DataFrame:
    """(strategy, task, trial) -> regret averaged over seeds, every run padded to the longest."""
    if "family" in regret.columns:
        regret = regret.assign(task=regret["family"] + "/" + regret["task"])
    return replicate_means(regret, over="task")


def check(regret: pd.DataFrame, strategy: str, baselines=BASELINES) -> list[str]:
    tasks = per_task(regret)
    present = [b for b in baselines if b in set(tasks["strategy"])]
    last = int(tasks["trial"].max())
    budgets = sorted({min(k, last) for k in CHECKPOINTS})
    table = tasks[tasks["trial"].isin(budgets)].pivot_table(index=["task", "trial"], columns="strategy", values="regret")
    means = table.groupby(level="trial").mean()
    lines = [f"{tasks['task'].nunique()} tasks, {regret['seed'].nunique()} seeds, trials up to {last}; "
             f"baselines: {', '.join(present)}", "",
             "| trials | " + " | ".join([strategy, *present]) + " | best baseline | difference | better / worse tasks | p |",
             "|---" * (len(present) + 6) + "|"]  # fmt: skip
    verdicts = []
    for k in budgets:
        best_name = means.loc[k, present].idxmin()
        ours, best = means.loc[k, strategy], means.loc[k, best_name]
        paired = table.xs(k, level="trial")[strategy] - table.xs(k, level="trial")[best_name]
        differs = paired[paired.abs() > 1e-12]
        p = wilcoxon(differs).pvalue if len(differs) >= 2 else float("nan")
        lines.append(f"| {k} | " + " | ".join(f"{means.loc[k, s]:.4f}" for s in [strategy, *present])
                     + f" | {best_name} | {ours - best:+.4f} | {(paired < -1e-12).sum()} / {(paired > 1e-12).sum()} "
                     f"| {p:.3g} |")  # fmt: skip
        ok = ours <= best + 1e-12 and (k < 10 or ours < best - 1e-12 or best == 0)
        verdicts.append((k, ok, best_name))
    lines.append("")
    for k, ok, best_name in verdicts:
        rule = "at most" if k < 10 else "strictly below (or both 0)"
        lines.append(f"- @{k}: {strategy} {rule} the best baseline ({best_name}): {'yes' if ok else 'NO'}")
    at10, at50 = means.loc[min(10, last), strategy], means.loc[min(50, last), strategy]
    halves = at50 <= 0.5 * at10 + 1e-12
    lines.append(f"- regret@{min(50, last)} at most half regret@{min(10, last)}: {at50:.4f} vs {at10:.4f} "
                 f"({'yes' if halves else 'NO'})")  # fmt: skip
    if {"gp_bo", "random"} <= set(means.columns) and min(5, last) in means.index:
        gp, rnd = means.loc[min(5, last), "gp_bo"], means.loc[min(5, last), "random"]
        lines.append(f"- gp_bo at or below random at 5 trials: {gp:.4f} vs {rnd:.4f} ({'yes' if gp <= rnd else 'NO'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", help="name=path[,path...]: regret parquets, concatenated")
    parser.add_argument("--strategy", default="weighted_portfolio")
    args = parser.parse_args()
    for item in args.tables:
        name, _, path = item.partition("=")
        regret = pd.concat([pd.read_parquet(p) for p in path.split(",")], ignore_index=True)
        print(f"## {name} ({path})\n")
        print("\n".join(check(regret, args.strategy)))
        print()


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    main()
