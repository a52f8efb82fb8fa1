"""Summaries of a regret table (``metahpo.hpo.replay.replay_strategies``): curves, regret@k, ranks, time to target.

Conventions, shared by every function here:
- A run is one (strategy, task, seed). A run that stopped early (its pool was exhausted, or
  ``--trials`` was capped to the pool) keeps its last regret and cost for the later trials: the
  best-so-far cannot change once nothing more is evaluated (``complete_runs``).
- Mean regret at a trial averages over tasks first, then over seeds; the 95% confidence interval
  is a Student-t interval over the per-seed means (seeds are the independent replicates; tasks are
  a fixed set): mean +- t(0.975, n_seeds - 1) * sd / sqrt(n_seeds). One seed gives no interval (NaN).
  With ``over="task"`` the replicates are the tasks instead (mean over seeds per task, interval over
  tasks: how much the figure depends on which tasks were drawn); the mean is the same. A strategy
  whose seed only breaks ties has no spread over seeds, so only the interval over tasks says anything.
- Ranks: strategies are ranked by regret within each (task, seed, trial), 1 = lowest regret, ties
  get the average of their ranks; the average rank is the mean over (task, seed).
- Trials (and cumulative cost) to reach regret <= target: the first trial at or under the target,
  per run; a run that never gets there counts as +inf, so the median over (task, seed) is inf when
  fewer than half of the runs reach the target; the fraction of runs that reach it is reported too.
- A median's 95% interval (``median_interval``) is the distribution-free order-statistic one
  (``scipy.stats.quantile_test``): the sorted runs' x_(l) and x_(u), l and u from the Binomial(n, 1/2)
  quantiles, coverage >= 95% whatever the distribution. Unreached runs sort last, so an upper bound
  that lands on one is inf (the interval reaches past what the runs saw). Under 6 runs there is
  none (NaN, NaN): even [min, max] covers the median only 1 - 2^(1-n) < 95% of the time. The runs
  are taken as independent draws; the seeds of one task are alike, so the interval is a little narrow
  where seeds barely change a run (a strategy whose seed only breaks ties).
- Seconds to target within a budget (``cost_to_target``): the same first hit, but a run reaches the
  target only if its cumulative cost is then within its task's budget in seconds; an unreached run is
  censored at that budget: +inf for the median (exact whenever at least half the runs reach it, as
  every censored time lies above every reached one), the budget itself for the mean (a restricted
  mean: a lower bound of the true mean wherever a run is censored).
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Optional

import numpy as np
import pandas as pd
from scipy import stats

from metahpo.hpo.metadataset import MetaDataset, pool_regret, regret_scale

RUN = ["strategy", "task", "seed"]
CHECKPOINTS = (1, 5, 10, 25, 50)
TARGETS = (0.05, 0.01)


def complete_runs(regret: pd.DataFrame, trials: int | None = None) -> pd.DataFrame:
    """Every run padded to trials 1..``trials`` (default: the table's longest run), last values carried."""
    trials = int(regret["trial"].max()) if trials is None else int(trials)
    runs = regret[RUN].drop_duplicates()
    full = runs.merge(pd.DataFrame({"trial": np.arange(1, trials + 1)}), how="cross")
    merged = full.merge(regret[[*RUN, "trial", "regret", "cost"]], on=[*RUN, "trial"], how="left")
    merged = merged.sort_values([*RUN, "trial"], kind="stable")
    merged[["regret", "cost"]] = merged.groupby(RUN, sort=False)[["regret", "cost"]].ffill()
    return merged.reset_index(drop=True)


def replicate_means(regret: pd.DataFrame, over: str = "seed") -> pd.DataFrame:
    """Mean regret per (strategy, ``over``, trial) of the completed runs: over tasks per seed, or seeds per task."""
    if over not in ("seed", "task"):
        raise ValueError(f"over must be seed or task, not {over!r}")
    return complete_runs(regret).groupby(["strategy", over, "trial"], as_index=False)["regret"].mean()


def t_half_width(values) -> float:
    """Half-width of the 95% t-interval of the mean; NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def _mean_with_interval(values: pd.Series, over: str) -> pd.Series:
    values = values.to_numpy(dtype=float)
    mean = float(values.mean())
    half = t_half_width(values)
    return pd.Series({"regret": mean, "ci_low": mean - half, "ci_high": mean + half, f"n_{over}s": len(values)})


def mean_regret(regret: pd.DataFrame, over: str = "seed") -> pd.DataFrame:
    """(strategy, trial, regret, ci_low, ci_high, n_seeds or n_tasks): the mean regret curve of each strategy."""
    replicates = replicate_means(regret, over)
    rows = [
        {"strategy": strategy, "trial": trial, **_mean_with_interval(group["regret"], over).to_dict()}
        for (strategy, trial), group in replicates.groupby(["strategy", "trial"], sort=True)
    ]
    return pd.DataFrame(rows)


def regret_at(regret: pd.DataFrame, checkpoints=CHECKPOINTS, over: str = "seed") -> pd.DataFrame:
    """Mean regret and its 95% interval (over seeds or over tasks) at each checkpoint trial the table reaches."""
    curves = mean_regret(regret, over)
    return curves[curves["trial"].isin(checkpoints)].reset_index(drop=True)


def average_rank(regret: pd.DataFrame) -> pd.DataFrame:
    """(strategy, trial, rank): mean over (task, seed) of the strategy's rank among strategies."""
    completed = complete_runs(regret)
    completed["rank"] = completed.groupby(["task", "seed", "trial"])["regret"].rank(method="average")
    return completed.groupby(["strategy", "trial"], as_index=False)["rank"].mean()


def median_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the distribution-free ``confidence`` interval of the median of ``values`` (inf allowed).

    The order statistics x_(l), x_(u) of the sorted values with l, u from the Binomial(n, 1/2)
    quantiles (``scipy.stats.quantile_test``), so that the coverage is at least ``confidence``;
    (NaN, NaN) when there are too few values for that (under 6 at 95%).
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    interval = stats.quantile_test(values, q=0, p=0.5).confidence_interval(confidence)
    return float(interval.low), float(interval.high)


def _median_bounds(grouped: pd.core.groupby.SeriesGroupBy) -> pd.DataFrame:
    """Per group: ``low`` and ``high`` of the median's 95% interval (``median_interval``)."""
    bounds = grouped.agg(lambda values: median_interval(values))
    return pd.DataFrame(bounds.tolist(), index=bounds.index, columns=["low", "high"])


def time_to_target(regret: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """Per run and target: the first trial with regret <= target and the cost so far (inf if never)."""
    rows = []
    for (strategy, task, seed), run in regret.sort_values("trial").groupby(RUN, sort=True):
        for target in targets:
            hit = run[run["regret"] <= target + 1e-12]  # regret is a ratio: keep 0.05 at 0.05
            reached = len(hit) > 0
            rows.append(
                {
                    "strategy": strategy, "task": task, "seed": seed, "target": target, "reached": reached,
                    "trials": float(hit["trial"].iloc[0]) if reached else math.inf,
                    "cost": float(hit["cost"].iloc[0]) if reached else math.inf,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def time_to_target_summary(regret: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """(strategy, target, median_trials, median_cost, fraction_reached) over (task, seed), and the medians'
    95% intervals: ``median_trials_low`` / ``_high``, ``median_cost_low`` / ``_high`` (``median_interval``)."""
    per_run = time_to_target(regret, targets)
    grouped = per_run.groupby(["strategy", "target"])
    table = grouped.agg(
        median_trials=("trials", "median"), median_cost=("cost", "median"), fraction_reached=("reached", "mean")
    )
    for column in ("trials", "cost"):
        bounds = _median_bounds(grouped[column])
        table[f"median_{column}_low"], table[f"median_{column}_high"] = bounds["low"], bounds["high"]
    return table.reset_index()


def cost_to_target(
    regret: pd.DataFrame, budgets: Mapping[str, float], targets=TARGETS, reference: Optional[str] = "random"
) -> pd.DataFrame:
    """Per strategy and target: seconds to regret <= target over (task, seed), each task within its budget.

    ``budgets``: task -> seconds. Columns: ``runs``, ``reached`` (runs at the target within the
    budget), ``out_of_trials`` (unreached runs whose trials ended below the budget: censored early),
    ``median_s`` (inf when fewer than half reach it) and its 95% interval ``median_s_low`` /
    ``median_s_high`` (``median_interval``: the high end inf when it is a censored run),
    ``mean_s`` (unreached counted at the budget),
    ``mean_share`` (the mean of seconds / budget, unreached 1: scale-free, where ``mean_s`` is led
    by the tasks with the dearest evaluations), and, with a ``reference`` strategy in the table,
    ``median_ratio`` / ``mean_ratio`` / ``share_ratio`` to its figures.
    """
    per_run = time_to_target(regret, targets)
    budget = per_run["task"].map(budgets).astype(float)
    if budget.isna().any():
        raise ValueError(f"no budget for tasks {sorted(per_run.loc[budget.isna(), 'task'].unique())}")
    per_run["reached"] = per_run["reached"] & (per_run["cost"] <= budget)
    per_run["seconds"] = np.where(per_run["reached"], per_run["cost"], math.inf)
    per_run["restricted"] = np.where(per_run["reached"], per_run["cost"], budget)
    per_run["share"] = per_run["restricted"] / budget
    last_cost = regret.groupby(RUN)["cost"].max().rename("last_cost").reset_index()
    per_run = per_run.merge(last_cost, on=RUN)
    per_run["short"] = ~per_run["reached"] & (per_run["last_cost"] < budget.to_numpy())
    table = per_run.groupby(["strategy", "target"], as_index=False).agg(
        runs=("reached", "size"), reached=("reached", "sum"), out_of_trials=("short", "sum"),
        median_s=("seconds", "median"), mean_s=("restricted", "mean"), mean_share=("share", "mean"),
    )  # fmt: skip
    bounds = _median_bounds(per_run.groupby(["strategy", "target"])["seconds"]).reset_index(drop=True)
    table.insert(table.columns.get_loc("median_s") + 1, "median_s_low", bounds["low"])
    table.insert(table.columns.get_loc("median_s") + 2, "median_s_high", bounds["high"])
    if reference is not None and reference in set(table["strategy"]):
        base = table[table["strategy"] == reference].set_index("target")
        with np.errstate(invalid="ignore", divide="ignore"):
            for ratio, column in (("median", "median_s"), ("mean", "mean_s"), ("share", "mean_share")):
                reference_value = table["target"].map(base[column]).to_numpy()
                # no ratio to an infinite median (fewer than half of the reference's runs got there)
                ratios = table[column].to_numpy() / reference_value
                table[f"{ratio}_ratio"] = np.where(np.isfinite(reference_value), ratios, np.nan)
    return table


def markdown_cost_to_target(table: pd.DataFrame, order=None) -> str:
    """``cost_to_target`` as Markdown: a row per strategy; per target median s [95% interval], mean s, mean
    share of the budget, their ratios to the reference ("-" where its median is inf), reached / runs."""
    targets = sorted(table["target"].unique(), reverse=True)
    names = list(order) if order is not None else sorted(table["strategy"].unique())
    header = ["strategy"]
    for t in targets:
        header += [f"median s <={t:g}", f"mean s <={t:g}", f"share <={t:g}", f"ratios <={t:g}", f"reached <={t:g}"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    rows = table.set_index(["strategy", "target"])
    for name in names:
        cells = [name]
        for t in targets:
            row = rows.loc[(name, t)]
            ratio = [_seconds(row.get(f"{c}_ratio", math.nan), ".2f") for c in ("median", "mean", "share")]
            short = f" ({int(row['out_of_trials'])} short)" if row["out_of_trials"] else ""
            median = median_text(row["median_s"], row.get("median_s_low"), row.get("median_s_high"), _seconds)
            cells += [median, _seconds(row["mean_s"]), f"{row['mean_share']:.3f}", " / ".join(ratio),
                      f"{int(row['reached'])}/{int(row['runs'])}{short}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def objective_resolution(
    data: MetaDataset, n_validation: Optional[Mapping[str, float]] = None, targets=TARGETS
) -> pd.DataFrame:
    """How fine each task's objective is, against the regret targets: one row per task.

    ``pool``: configurations; ``within_<t>``: the share of the pool at regret <= t (random search
    needs about 1 / share trials to reach t); with ``n_validation`` (task -> validation examples, for
    an accuracy-like objective), ``one_example``: the regret of one validation example,
    1 / n_validation / (best - worst). A target below it asks for an exact tie with the best.
    """
    rows = []
    for name, task in data.tasks.items():
        regret = pool_regret(task)
        best, worst = regret_scale(task)
        count = (n_validation or {}).get(name)
        usable = count is not None and math.isfinite(float(count)) and count > 0 and best > worst
        row = {"task": name, "pool": len(task), "n_validation": float(count) if usable else math.nan,
               "one_example": 1.0 / float(count) / (best - worst) if usable else math.nan}  # fmt: skip
        for target in targets:
            row[f"within_{target:g}"] = float((regret <= target + 1e-12).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(regret: pd.DataFrame, checkpoints=CHECKPOINTS, targets=TARGETS) -> pd.DataFrame:
    """One row per strategy: regret@k (+ interval), average rank at the last trial, time to each target.

    Columns: ``regret@k``, ``regret@k_low``, ``regret@k_high`` for each checkpoint the table reaches;
    ``rank@last``; ``trials_to_<t>``, ``cost_to_<t>`` (medians over task x seed) each followed by its
    95% interval's ``_low`` and ``_high`` (``median_interval``), and ``reached_<t>``, for each target t.
    """
    last_trial = int(regret["trial"].max())
    summary = pd.DataFrame({"strategy": sorted(regret["strategy"].unique())}).set_index("strategy")
    at = regret_at(regret, checkpoints)
    for k in [c for c in checkpoints if c <= last_trial]:
        rows = at[at["trial"] == k].set_index("strategy")
        summary[f"regret@{k}"] = rows["regret"]
        summary[f"regret@{k}_low"] = rows["ci_low"]
        summary[f"regret@{k}_high"] = rows["ci_high"]
    ranks = average_rank(regret)
    summary["rank@last"] = ranks[ranks["trial"] == last_trial].set_index("strategy")["rank"]
    reach = time_to_target_summary(regret, targets)
    for target in targets:
        rows = reach[reach["target"] == target].set_index("strategy")
        for name, column in (("trials", "median_trials"), ("cost", "median_cost")):
            summary[f"{name}_to_{target:g}"] = rows[column]
            summary[f"{name}_to_{target:g}_low"] = rows[f"{column}_low"]
            summary[f"{name}_to_{target:g}_high"] = rows[f"{column}_high"]
        summary[f"reached_{target:g}"] = rows["fraction_reached"]
    return summary.reset_index()


def summary_targets(columns) -> list[str]:
    """The targets t of a ``summarize`` table's ``trials_to_<t>`` columns (not ``_low`` / ``_high``), as written."""
    return [match.group(1) for match in map(re.compile(r"trials_to_([^_]+)").fullmatch, columns) if match]


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as a fixed-width text table: regret@k as "mean ±half-interval", targets as
    "median [95% interval] (reached%)" (the median alone where the summary has no interval)."""
    checkpoints = [c[len("regret@"):] for c in summary.columns if c.startswith("regret@") and c[7:].isdigit()]
    targets = summary_targets(summary.columns)
    table = pd.DataFrame({"strategy": summary["strategy"]})
    for k in checkpoints:
        half = (summary[f"regret@{k}_high"] - summary[f"regret@{k}_low"]) / 2
        table[f"regret@{k}"] = [_with_interval(m, h) for m, h in zip(summary[f"regret@{k}"], half)]
    table["rank@last"] = summary["rank@last"].map(lambda r: f"{r:.2f}")
    missing = pd.Series(math.nan, summary.index)  # a summary written without the intervals
    for t in targets:
        for name in ("trials", "cost"):
            medians = summary[f"{name}_to_{t}"]
            lows, highs = (summary.get(f"{name}_to_{t}_{end}", missing) for end in ("low", "high"))
            table[f"{name}<={t}"] = [median_text(*bounds, _number) for bounds in zip(medians, lows, highs)]
        table[f"trials<={t}"] += [f" ({f:.0%})" for f in summary[f"reached_{t}"]]
    return table.to_string(index=False)


def markdown_regret_at(at: pd.DataFrame, order=None) -> str:
    """``regret_at`` rows as Markdown: a row per strategy (``order``, default sorted), "mean ±half" per checkpoint."""
    halves = (at["ci_high"] - at["ci_low"]) / 2
    cells = at.assign(cell=[_with_interval(mean, half) for mean, half in zip(at["regret"], halves)])
    table = cells.pivot(index="strategy", columns="trial", values="cell")
    table = table.loc[list(order) if order is not None else sorted(table.index)]
    lines = ["| strategy | " + " | ".join(f"@{k}" for k in table.columns) + " |"]
    lines.append("|---" * (len(table.columns) + 1) + "|")
    lines += [f"| {name} | " + " | ".join(row) + " |" for name, row in zip(table.index, table.to_numpy())]
    return "\n".join(lines)


def _with_interval(mean: float, half: float) -> str:
    return f"{mean:.3f}" if not math.isfinite(half) else f"{mean:.3f} ±{half:.3f}"


def median_text(median: float, low, high, fmt, median_fmt=None, open_end: str = "inf)") -> str:
    """"median [low, high]"; "median [low, inf)" (``open_end``) when the upper bound is an unreached run or
    missing; the median alone without an interval (too few runs, a table written before the intervals) or
    when the whole interval lies past the runs (the median is inf too). ``fmt`` formats the bounds, and the
    median unless ``median_fmt`` is given (the report's "not reached")."""
    text = (median_fmt or fmt)(median)
    if low is None or not math.isfinite(float(low)):
        return text
    upper = f"{fmt(high)}]" if high is not None and math.isfinite(float(high)) else open_end
    return f"{text} [{fmt(low)}, {upper}"


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "inf"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def _seconds(value: float, spec: str = ".0f") -> str:
    return format(value, spec) if math.isfinite(value) else ("inf" if value > 0 else "-")
