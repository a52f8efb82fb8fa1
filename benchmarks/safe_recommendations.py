"""The safe rule against the default config and the surrogate, leave one task out, on fit_meta's output.

Reads ``results/meta/loto.parquet`` (run the fit_meta stage first) and each task's validation size
(``results/data/<dataset>/metahpo.json``), and prints, per held-out task, the top-1 of the default
config, the surrogate and the safe rule: normalised regret, val and test metric; the safe rule's
fallback and reason, its top-1's interval and whether it held the actual normalised score; then the
means, the fallbacks, and the issue-14 checks. The objective's resolution is one validation example,
1 / n_validation in the task's metric (accuracy): a top-1 "more than the resolution worse" than the
default scores at least two validation examples fewer.
With ``--synthetic N``: the same comparison on the synthetic meta-dataset (``metahpo.hpo.synthetic``,
N tasks sharing 27 configurations, the default at the encoded corner (0, 1, 1), far from every
task's optimum), where many prior tasks are alike: regret only (no validation set).
Not a test; run it by hand:

    python benchmarks/safe_recommendations.py [--params params.yaml] [--results results]
    python benchmarks/safe_recommendations.py --synthetic 12 [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from metahpo.config import load_params

METHODS = ("default", "surrogate", "safe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--results", default="results")
    parser.add_argument("--synthetic", type=int, help="tasks of a synthetic meta-dataset instead of fit_meta's output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.synthetic:
        return synthetic(args.synthetic, args.seed)
    params = load_params(args.params)
    results = Path(args.results)
    loto = pd.read_parquet(results / "meta" / "loto.parquet")
    top1 = loto[loto["k"] == loto["k"].min()]
    rows = []
    for task, spec in params.tasks.items():
        by = top1[top1["task"] == task].set_index("method")
        if by.empty:
            continue
        info = json.loads((results / "data" / spec.dataset / "metahpo.json").read_text())
        resolution = 1.0 / info["split_sizes"]["validation"]
        safe = by.loc["safe"]
        actual = 1.0 - safe.regret
        rows.append({
            "task": task, "resolution": resolution,
            **{f"{m} regret": by.loc[m, "regret"] for m in METHODS},
            **{f"{m} val": by.loc[m, "val_metric"] for m in METHODS},
            **{f"{m} test": by.loc[m, "test_metric"] for m in METHODS},
            "interval": "—" if pd.isna(safe.lower) else f"[{safe.lower:.3f}, {safe.upper:.3f}]",
            "held": "—" if pd.isna(safe.lower) else ("yes" if safe.lower <= actual <= safe.upper else "no"),
            "fallback": safe.fallback or "no", "reason": safe.reason or "—",
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    columns = ["task"] + [f"{m} {what}" for what in ("regret", "val", "test") for m in METHODS]
    print("| " + " | ".join(columns + ["safe: fallback (why)", "interval (held)"]) + " |")
    print("|" + "---|" * (len(columns) + 2))
    for _, r in frame.iterrows():
        cells = [r.task] + [f"{r[c]:.3f}" for c in columns[1:]]
        fallback = "no" if r.fallback == "no" else f"{r.fallback} ({r.reason})"
        print("| " + " | ".join(cells + [fallback, f"{r.interval} ({r.held})"]) + " |")
    means = frame[columns[1:]].mean()
    print("| **mean** | " + " | ".join(f"{means[c]:.3f}" for c in columns[1:]) + " | | |")
    gap = frame["safe val"] - frame["default val"]
    worse = frame[gap < -frame["resolution"] - 1e-12]
    better = frame[gap > 1e-12]
    why = frame[frame.fallback != "no"]["reason"].map(lambda reason: reason.split(":")[0]).value_counts()
    print(f"\nfallbacks: {int((frame.fallback != 'no').sum())} of {len(frame)}: "
          + ", ".join(f"{n} x {reason}" for reason, n in why.items()))
    print(f"mean val: safe {frame['safe val'].mean():.4f}, default {frame['default val'].mean():.4f}, "
          f"surrogate {frame['surrogate val'].mean():.4f}")
    print(f"tasks where safe's val is more than one validation example below the default's: {list(worse.task) or 'none'}")
    print(f"tasks where safe's val beats the default's: {list(better.task) or 'none'}")


def synthetic(n_tasks: int, seed: int) -> None:
    from metahpo.hpo.metadataset import from_frame
    from metahpo.hpo.synthetic import make_synthetic
    from metahpo.meta.candidates import CandidateGrid
    from metahpo.meta.loto import leave_one_task_out

    table, mf = make_synthetic(n_tasks, 27, seed=seed, noise=0.02)
    data = from_frame(table, meta_features=mf)
    grid = CandidateGrid.from_pool("synthetic", next(iter(data.tasks.values())), (0, 1, 1))
    meta = load_params("params.yaml").meta.model_copy(update={"top_k": [1]})
    rows, _ = leave_one_task_out(grid, data, meta, seed)
    frame = pd.DataFrame(rows).pivot(index="task", columns="method", values="regret")[list(METHODS)]
    reasons = {r["task"]: r["reason"] or "no" for r in rows if r["method"] == "safe"}
    print(frame.assign(fallback=pd.Series(reasons)).round(3).to_string())
    print(f"mean regret: {', '.join(f'{m} {frame[m].mean():.3f}' for m in METHODS)}; "
          f"fallbacks: {sum(r != 'no' for r in reasons.values())} of {len(reasons)}; "
          f"safe worse than the default on: {list(frame.index[frame['safe'] > frame['default']]) or 'none'}")


if __name__ == "__main__":
    main()
