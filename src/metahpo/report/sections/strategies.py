"""The HPO strategies section: the replay benchmark per model family and the real tuning runs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from metahpo.hpo import regret_summary
from metahpo.report import figures
from metahpo.report.common import benchmark_families, display_order, median_cell, metric_of, with_bounds
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import (
    MISSING,
    Table,
    config_table,
    fmt_fixed,
    fmt_int,
    fmt_metric,
    fmt_number,
    fmt_percent,
    fmt_seconds,
    is_missing,
)

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


STRATEGIES = ("grid", "random", "tpe", "gp_bo", "transfer_bo", "zero_shot", "sh", "asha", "sh_warm", "asha_warm",
              "average_rank", "portfolio", "weighted_portfolio", "lc_transfer")
# matplotlib's cycle has 10 colours (C0..C9); the strategies after the tenth take these, so none repeats
EXTRA_COLORS = ("black", "gold", "navy", "lime", "magenta", "maroon")
COST_GRID_POINTS = 100
LOG_COST_RATIO = 10  # a cost axis whose largest value is this many times its smallest one is drawn log-scale


def build(inputs: ReportInputs) -> dict:
    """The replay benchmark per model family (benchmark stage) and the real tuning runs (tune stage)."""
    return {**_benchmark_part(inputs.params, inputs.results), **_tune_part(inputs.params, inputs.results)}


def _strategy_color(strategy: str, order: list[str]) -> str:
    """A registered strategy has the same colour in every figure (its place in ``STRATEGIES``)."""
    position = STRATEGIES.index(strategy) if strategy in STRATEGIES else len(STRATEGIES) + order.index(strategy)
    return f"C{position}" if position < 10 else EXTRA_COLORS[(position - 10) % len(EXTRA_COLORS)]


def _benchmark_part(params: Params, results: ResultsTree) -> dict:
    stage_note = results.missing_stage("benchmark")
    if stage_note:
        return {"benchmark_notes": [stage_note], "families": []}
    regret, regret_note = results.benchmark_regret()
    summary, summary_note = results.benchmark_summary()
    if summary is not None:
        summary = benchmark_families(summary)
        if summary is None:
            summary_note = "not available: benchmark/summary.json is not an object keyed by family"
    notes = [note for note in (regret_note, summary_note) if note]
    regret_families = set(regret["family"]) if regret is not None else set()
    blocks = []
    for family in display_order(set(summary or {}) | regret_families, list(params.families)):
        entry = (summary or {}).get(family) or {}
        block_notes = [str(entry["note"])] if entry.get("note") else []
        if regret is not None and family not in regret_families and not block_notes:
            block_notes.append(f"not available: benchmark/regret.parquet has no rows for {family}")
        if summary is not None and not entry:
            block_notes.append(f"not available: benchmark/summary.json has no entry for {family}")
        rows = regret[regret["family"] == family] if family in regret_families else None
        blocks.append(
            {
                "family": family,
                "notes": block_notes,
                "table": _benchmark_summary_table(entry["records"]) if entry.get("records") else None,
                "resolution": _resolution_table(entry["resolution"]) if entry.get("resolution") else None,
                "figure": _regret_figure(rows) if rows is not None else None,
            }
        )
    return {"benchmark_notes": notes, "families": blocks}


def _regret_figure(rows: pd.DataFrame) -> str:
    """Mean regret (95% band) against trials, and against cumulative seconds on a shared cost grid (log x)."""
    order = display_order(rows["strategy"], STRATEGIES)
    on_grid, grid, log_cost = _regret_on_cost_grid(rows)
    return figures.regret_curves_figure(
        [
            # trials on a log axis: the first few trials are where transfer pays
            {"xlabel": "trial", "log_x": True, "curves": _regret_curves(regret_summary.mean_regret(rows), order)},
            {"xlabel": "cumulative seconds", "log_x": log_cost,
             "curves": _regret_curves(regret_summary.mean_regret(on_grid), order, grid)},
        ]
    )  # fmt: skip


def _regret_curves(mean: pd.DataFrame, order: list[str], grid: Optional[np.ndarray] = None) -> list[dict]:
    """``regret_summary.mean_regret`` rows as figure curves; with ``grid``, trial n stands for ``grid[n - 1]``."""
    curves = []
    for strategy in order:
        rows = mean[mean["strategy"] == strategy].sort_values("trial")
        trials = rows["trial"].to_numpy(dtype=int)
        curves.append(
            {
                "label": strategy,
                "color": _strategy_color(strategy, order),
                "x": trials if grid is None else grid[trials - 1],
                "mean": rows["regret"].to_numpy(dtype=float),
                "low": rows["ci_low"].to_numpy(dtype=float),
                "high": rows["ci_high"].to_numpy(dtype=float),
            }
        )
    return curves


def _cost_grid(costs: np.ndarray) -> tuple[np.ndarray, bool]:
    """``COST_GRID_POINTS`` seconds from the cheapest to the dearest cumulative cost; and whether log-spaced."""
    positive = costs[np.isfinite(costs) & (costs > 0)]
    if len(positive) == 0:
        return np.linspace(0.0, 1.0, COST_GRID_POINTS), False
    low, high = float(positive.min()), float(positive.max())
    if high >= LOG_COST_RATIO * low:
        return np.geomspace(low, high, COST_GRID_POINTS), True
    return np.linspace(low, high, COST_GRID_POINTS), False


def _regret_on_cost_grid(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, bool]:
    """Each run's best-so-far regret read at every point of a common cost grid, as a regret table.

    The regret at cost c is the run's regret after its last trial whose cumulative cost is <= c (a
    step function: the best so far changes only when a trial ends), 1 before its first trial ends,
    and its last value after its last trial (as ``regret_summary.complete_runs`` carries it). In the table
    returned, ``trial`` n is grid point n, so ``regret_summary.mean_regret`` averages it exactly as it does
    trials: over tasks, then seeds, with a 95% interval over seeds.
    """
    grid, log_cost = _cost_grid(rows["cost"].to_numpy(dtype=float))
    grid_points = np.arange(1, len(grid) + 1)
    runs = []
    for (strategy, task, seed), run in rows.sort_values("trial").groupby(regret_summary.RUN, sort=True):
        cost = np.maximum.accumulate(run["cost"].to_numpy(dtype=float))
        regret = run["regret"].to_numpy(dtype=float)
        last_done = np.searchsorted(cost, grid, side="right") - 1
        at_grid = np.where(last_done >= 0, regret[np.maximum(last_done, 0)], 1.0)
        runs.append(
            pd.DataFrame(
                {"strategy": strategy, "task": task, "seed": seed, "trial": grid_points, "regret": at_grid, "cost": grid}
            )
        )
    return pd.concat(runs, ignore_index=True), grid, log_cost


def _benchmark_summary_table(records: list[dict]) -> Table:
    """``regret_summary.summarize`` rows (summary.json): regret@k ±95% half-interval, rank, time to each target
    (median [95% interval]; the median alone from a summary.json written without the intervals)."""
    summary = pd.DataFrame(records)
    checkpoints = sorted(int(c.removeprefix("regret@")) for c in summary.columns if re.fullmatch(r"regret@\d+", c))
    # the looser target first, as regret_summary.TARGETS lists them
    targets = sorted(regret_summary.summary_targets(summary.columns), key=float, reverse=True)
    summary = summary.set_index("strategy").loc[display_order(summary["strategy"], STRATEGIES)]
    rows = [
        [str(strategy)]
        + [with_bounds(row[f"regret@{k}"], row[f"regret@{k}_low"], row[f"regret@{k}_high"]) for k in checkpoints]
        + [fmt_fixed(row["rank@last"], 2)]
        + [
            cell
            for t in targets
            for cell in (
                median_cell(row, f"trials_to_{t}", fmt_number),
                median_cell(row, f"cost_to_{t}", fmt_seconds),
                fmt_percent(row[f"reached_{t}"]),
            )
        ]
        for strategy, row in summary.iterrows()
    ]
    columns = (
        [("strategy", False)]
        + [(f"regret@{k}", True) for k in checkpoints]
        + [("rank@last", True)]
        + [
            column
            for t in targets
            for column in ((f"trials to ≤{t}", True), (f"seconds to ≤{t}", True), (f"runs reaching ≤{t}", True))
        ]
    )
    caption = ("mean normalised regret ±95% interval; median trials and seconds over task × seed runs [95% "
               "distribution-free interval; ∞: past the runs that never got there; none under 6 runs]")
    return Table.build(columns, rows, caption=caption)


def _resolution_table(records: list[dict]) -> Table:
    """``regret_summary.objective_resolution`` rows: how fine each task's objective is against the regret targets."""
    frame = pd.DataFrame(records)
    targets = sorted((c.removeprefix("within_") for c in frame.columns if c.startswith("within_")), key=float, reverse=True)
    rows = [
        [str(row["task"]), fmt_int(row["pool"]), fmt_int(row.get("n_validation")), fmt_metric(row.get("one_example"))]
        + [fmt_percent(row[f"within_{t}"]) for t in targets]
        for _, row in frame.iterrows()
    ]
    columns = [("task", False), ("configs", True), ("validation examples", True), ("regret of one example", True)]
    columns += [(f"configs within ≤{t}", True) for t in targets]
    return Table.build(
        columns,
        rows,
        caption="how fine each task's objective is, against the regret targets",
    )


def _tune_part(params: Params, results: ResultsTree) -> dict:
    stage_note = results.missing_stage("tune")
    if stage_note:
        return {"tune_notes": [stage_note], "tuned": []}
    tasks = display_order(results.tuned_tasks(), list(params.tasks))
    if not tasks:
        return {"tune_notes": [f"not available: {results.root.name}/tune/ holds no <task>.parquet (run the tune stage)"],
                "tuned": []}  # fmt: skip
    blocks = []
    for task in tasks:
        frame, note = results.tune(task)
        if frame is None:
            blocks.append({"task": task, "notes": [note]})
        elif frame.empty:
            blocks.append({"task": task, "notes": [f"not available: {results.root.name}/tune/{task}.parquet is empty"]})
        else:
            blocks.append({"task": task, **_tune_block(frame, _tune_metric(frame, results, task))})
    return {"tune_notes": [], "tuned": blocks}


def _tune_metric(frame: pd.DataFrame, results: ResultsTree, task: str) -> str:
    """The task's primary metric: the tune table's own ``metric`` column, else its sweep's."""
    if "metric" in frame.columns:
        return metric_of(frame)
    sweep, _ = results.sweep(task)
    return metric_of(sweep) if sweep is not None and len(sweep) else "metric"


def _tune_block(frame: pd.DataFrame, metric: str) -> dict:
    """Per strategy: the best-so-far curves, and its best trial: the first whose val metric is the
    final best so far (the stage counts full evaluations only there, never a partial one)."""
    order = display_order(frame["strategy"], STRATEGIES)
    runs, rows, notes = [], [], []  # rows: (cells, the best trial's config)
    for strategy in order:
        run = frame[frame["strategy"] == strategy].sort_values("trial")
        runs.append(
            {
                "label": strategy,
                "color": _strategy_color(strategy, order),
                "trials": run["trial"].to_numpy(dtype=int),
                "seconds": run["cumulative_seconds"].to_numpy(dtype=float),
                "best": run["best_val_metric"].to_numpy(dtype=float),
            }
        )
        finished = run[(run["state"] == "ok") & run["val_metric"].notna()]
        best_so_far = run["best_val_metric"].max()
        best_rows = finished[np.isclose(finished["val_metric"], best_so_far)] if not is_missing(best_so_far) else []
        best = best_rows.iloc[0] if len(best_rows) else None
        cells = [strategy, fmt_int(len(run)), fmt_int(len(finished))]
        if best is None:
            cells += [MISSING] * 4
        else:
            cells += [fmt_metric(best.val_metric), fmt_metric(best.test_metric), fmt_int(best.trial),
                      fmt_seconds(best.cumulative_seconds)]  # fmt: skip
        rows.append((cells + [fmt_seconds(run["cumulative_seconds"].max())], None if best is None else best.config))
        notes += [f"{strategy}: {note}" for note in dict.fromkeys(run["note"].dropna().astype(str)) if note]
    columns = [
        ("strategy", False), ("trials", True), ("ok", True), (f"best val {metric}", True),
        (f"test {metric} of the best", True), ("found at trial", True), ("seconds to the best", True),
        ("total seconds", True),
    ]  # fmt: skip
    return {
        "notes": notes,
        "table": config_table(columns, rows, caption="each strategy's best trial; its config's hyperparameters last"),
        "figure": figures.best_so_far_figure(runs, ylabel=f"best val {metric} so far"),
    }


SECTION = SECTIONS.register(Section("strategies", "HPO strategies: replay benchmark and tuning runs", build))
