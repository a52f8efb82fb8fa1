"""The report's sections as plain data (tables of strings, figure URIs, notes) for the template."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from metahpo.config import Params
from metahpo.hpo import metrics
from metahpo.report import figures, provenance
from metahpo.report.inputs import ResultsTree
from metahpo.report.tables import (
    MISSING,
    Table,
    fmt_config,
    fmt_fixed,
    fmt_int,
    fmt_metric,
    fmt_number,
    fmt_percent,
    fmt_scores,
    fmt_seconds,
    is_missing,
)

STATES = ("ok", "diverged", "oom", "failed")
METHODS = ("surrogate", "nearest", "portfolio", "default")  # display order; others follow by name
METAFEATURE_GROUPS = ("simple", "statistical", "landmarkers")
STRATEGIES = ("grid", "random", "tpe", "gp_bo", "transfer_bo", "zero_shot", "sh", "asha", "sh_warm", "asha_warm")
COST_GRID_POINTS = 100
LOG_COST_RATIO = 10  # a cost axis whose largest value is this many times its smallest one is drawn log-scale
TOP_TRIALS = 5
CURVE_TRIALS = 3  # learning curves of the best few trials, plus the median trial
FAILURES_SHOWN = 10
MESSAGE_CHARS = 300
NOT_AVAILABLE = "not available"
DEFAULT_TASK_TYPE = "classification"  # metahpo.json files written before task types had none


def _display_order(names, preferred) -> list[str]:
    """``names``, distinct: those in ``preferred`` in its order, then the others by name."""
    present = set(names)
    return [name for name in preferred if name in present] + sorted(present - set(preferred))


# --- tasks -------------------------------------------------------------------------------------


def pretrained_flags(params: Params) -> dict[str, Optional[bool]]:
    """family -> starts from pretrained weights; from the family registry, else the family's options."""
    try:
        from metahpo.models import FAMILIES
    except Exception:  # the models need torch; the report must still build without it
        FAMILIES = None
    flags: dict[str, Optional[bool]] = {}
    for family, spec in params.families.items():
        registered = params.registered_family(family)
        if FAMILIES is not None and registered in FAMILIES:
            flags[family] = bool(FAMILIES.get(registered).pretrained)
        else:
            option = spec.options.get("pretrained")
            flags[family] = option if isinstance(option, bool) else None
    return flags


def _load_each(names: list[str], load, stage_note: Optional[str]) -> tuple[dict[str, Any], list[str]]:
    """name -> loaded value, and the notes for those that are missing (one note if the stage is)."""
    if stage_note:
        return {}, [stage_note]
    loaded, notes = {}, []
    for name in names:
        value, note = load(name)
        if value is None:
            notes.append(f"{name}: {note}")
        else:
            loaded[name] = value
    return loaded, notes


def tasks_section(params: Params, results: ResultsTree) -> dict:
    infos, notes = _load_each(
        _datasets_in_use(params), results.dataset_info, results.missing_stage("data", "download")
    )
    flags = pretrained_flags(params)
    init_names = {True: "pretrained", False: "random init", None: "unknown"}
    rows = []
    for task, spec in params.tasks.items():
        info = infos.get(spec.dataset, {})
        sizes = info.get("split_sizes", {})
        rows.append(
            [
                task,
                spec.dataset,
                params.datasets[spec.dataset].source if spec.dataset in params.datasets else MISSING,
                spec.family,
                init_names[flags.get(spec.family)],
                str(info.get("task_type", DEFAULT_TASK_TYPE)) if info else MISSING,
                str(info.get("modality", MISSING)),
                fmt_int(info.get("num_classes")),
                *(fmt_int(sizes.get(split)) for split in ("train", "validation", "test")),
                "x".join(str(d) for d in info["input_shape"]) if info.get("input_shape") else MISSING,
            ]
        )
    columns = [
        ("task", False), ("dataset", False), ("source", False), ("family", False), ("weights", False),
        ("task type", False), ("modality", False), ("classes", True), ("train", True), ("validation", True),
        ("test", True), ("input shape", False),
    ]  # fmt: skip
    return {"notes": notes, "tasks": Table.build(columns, rows), **_metafeature_tables(params, results)}


def _datasets_in_use(params: Params) -> list[str]:
    return list(dict.fromkeys(spec.dataset for spec in params.tasks.values()))


def _metafeature_tables(params: Params, results: ResultsTree) -> dict:
    loaded, notes = _load_each(
        _datasets_in_use(params), results.metafeatures, results.missing_stage("metafeatures", "metafeatures")
    )
    if not loaded:
        return {"metafeature_notes": notes, "metafeature_groups": [], "metafeature_seconds": None}
    group_tables = []
    for group in METAFEATURE_GROUPS:
        names = list(dict.fromkeys(n for mf in loaded.values() for n in mf.get("groups", {}).get(group, [])))
        if not names:
            continue
        rows = [[dataset] + [fmt_number(mf["features"].get(name)) for name in names] for dataset, mf in loaded.items()]
        group_tables.append(Table.build([("dataset", False)] + [(n, True) for n in names], rows, caption=group))
    timed = list(dict.fromkeys(key for mf in loaded.values() for key in mf.get("seconds", {})))
    seconds_rows = [
        [dataset] + [fmt_seconds(mf["seconds"].get(key)) for key in timed] + [fmt_seconds(sum(mf["seconds"].values()))]
        for dataset, mf in loaded.items()
    ]
    seconds_table = Table.build(
        [("dataset", False)] + [(key, True) for key in timed] + [("total", True)],
        seconds_rows,
        caption="seconds to compute each group",
    )
    return {"metafeature_notes": notes, "metafeature_groups": group_tables, "metafeature_seconds": seconds_table}


# --- sweeps ------------------------------------------------------------------------------------


def sweeps_section(params: Params, results: ResultsTree) -> dict:
    stage_note = results.missing_stage("sweep", "sweep")
    if stage_note:
        return {"notes": [stage_note], "tasks": []}
    blocks = []
    for task, spec in params.tasks.items():
        frame, note = results.sweep(task)
        if frame is None:
            blocks.append({"task": task, "notes": [note]})
            continue
        blocks.append({"task": task, "notes": [], **_sweep_block(frame, params, spec.family)})
    return {"notes": [], "tasks": blocks}


def _sweep_block(frame: pd.DataFrame, params: Params, family: str) -> dict:
    hp_columns = [c for c in frame.columns if c.startswith("hp.")]
    metric = _metric_of(frame)
    ok = frame[frame["state"] == "ok"].sort_values(["val_metric", "trial_id"], ascending=[False, True])
    states = list(STATES) + sorted(set(frame["state"].astype(str)) - set(STATES))
    counts = Table.build(
        [(state, True) for state in states] + [("total", True)],
        [[str(int((frame["state"] == state).sum())) for state in states] + [str(len(frame))]],
    )
    top_rows = [
        [str(row.trial_id), str(row.search)]
        + [fmt_number(row[c]) for c in hp_columns]
        + [fmt_metric(row.val_metric), fmt_metric(row.test_metric), fmt_scores(row.test_metrics)]
        + [fmt_seconds(row.seconds)]
        for _, row in ok.head(TOP_TRIALS).iterrows()
    ]
    top = Table.build(
        [("trial", False), ("search", False)]
        + [(c.removeprefix("hp."), True) for c in hp_columns]
        + [(f"val {metric}", True), (f"test {metric}", True), ("all test metrics", False), ("seconds", True)],
        top_rows,
        caption=f"top {TOP_TRIALS} by val {metric}",
    )
    failed = frame[frame["state"] != "ok"].sort_values("trial_id").head(FAILURES_SHOWN)
    failures = Table.build(
        [("trial", False), ("state", False), ("message", False)],
        [[str(r.trial_id), str(r.state), _shorten(r.message)] for _, r in failed.iterrows()],
        caption=f"trials that did not finish (first {FAILURES_SHOWN})",
    )
    notes = [] if len(ok) else ["not available: no trial finished with state ok, so there is nothing to plot"]
    return {
        "notes": notes,
        "counts": counts,
        "top": top if top_rows else None,
        "failures": failures if len(failed) else None,
        "hp_figure": _hp_figure(ok, hp_columns, params, family) if len(ok) and hp_columns else None,
        "curves_figure": _curves_figure(ok) if len(ok) else None,
    }


def _metric_of(rows: pd.DataFrame) -> str:
    """The primary metric of one task's rows (sweep or LOTO): every row of a task names the same."""
    return str(rows["metric"].iloc[0]) if len(rows) else MISSING


def _shorten(message: Any) -> str:
    text = MISSING if is_missing(message) else str(message)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _hp_figure(ok: pd.DataFrame, hp_columns: list[str], params: Params, family: str) -> str:
    space = params.families[family].space if family in params.families else {}
    panels = []
    for column in hp_columns:
        name = column.removeprefix("hp.")
        values = pd.to_numeric(ok[column], errors="coerce")
        log = (name == "lr" or (name in space and space[name].sample == "loguniform")) and bool((values > 0).all())
        points = {
            str(search): (values[group.index].tolist(), group["val_metric"].tolist())
            for search, group in ok.groupby("search", sort=True)
        }
        panels.append({"name": name, "log": log, "points": points})
    return figures.hyperparameter_figure(panels)


def _curves_figure(ok: pd.DataFrame) -> str:
    """``ok`` is sorted best first; the median trial is the lower median by val metric."""
    chosen = list(range(min(CURVE_TRIALS, len(ok))))
    median = (len(ok) - 1) // 2
    curves = []
    for position in chosen + ([median] if median not in chosen else []):
        row = ok.iloc[position]
        label = f"{row.trial_id} (median)" if position == median else f"{row.trial_id} (#{position + 1})"
        curves.append((label, _as_list(row.curve_val_metric)))
    return figures.learning_curves_figure(curves)


def _as_list(values: Any) -> list[float]:
    if values is None or (not isinstance(values, (list, np.ndarray)) and is_missing(values)):
        return []
    return [float(v) for v in values]


# --- leave one task out ------------------------------------------------------------------------


def loto_section(params: Params, results: ResultsTree) -> dict:
    loto, note = results.loto()
    if loto is None:
        return {"notes": [note], "tasks": [], "summaries": [], "figure": None}
    methods = _display_order(loto["method"], METHODS)
    ks = sorted(int(k) for k in loto["k"].unique())
    loto = loto.assign(
        method_order=loto["method"].map(methods.index),
        seconds_share=loto["seconds"] / loto["grid_seconds"].where(loto["grid_seconds"] > 0),
    )
    tasks = list(params.tasks) + sorted(set(loto["task"]) - set(params.tasks))
    blocks = []
    for task in tasks:
        rows = loto[loto["task"] == task].sort_values(["method_order", "k"])
        if rows.empty:
            blocks.append({"task": task, "notes": [f"not available: {task} has no rows in meta/loto.parquet"]})
            continue
        blocks.append({"task": task, "notes": [], "table": _loto_task_table(rows)})
    mean_regret, mean_share = (
        loto.groupby(["method", "k"])[column].mean().unstack("k").reindex(index=methods, columns=ks)
        for column in ("regret", "seconds_share")
    )
    summaries = [
        _pivot_table(
            mean_regret, fmt_metric, "mean regret: (grid-best val metric - best of the k) / (grid best - grid worst)"
        ),
        _pivot_table(mean_share, fmt_percent, "mean seconds spent, as a share of the whole grid's"),
        _top1_test_table(loto, methods, tasks),
    ]
    figure = figures.grouped_bar_figure(
        [f"k={k}" for k in ks],
        {m: [float(v) for v in mean_regret.loc[m]] for m in methods},
        xlabel="configs tried (k)",
        ylabel="mean regret",
    )
    return {"notes": [], "tasks": blocks, "summaries": summaries, "figure": figure}


def _loto_task_table(rows: pd.DataFrame) -> Table:
    first = rows.iloc[0]
    metric = _metric_of(rows)
    body = [
        [
            str(r.method), fmt_int(r.k), fmt_metric(r.regret), fmt_metric(r.val_metric), fmt_metric(r.test_metric),
            fmt_int(r.runs), fmt_seconds(r.seconds), fmt_percent(r.seconds_share), fmt_config(r.configs),
            MISSING if is_missing(r.note) or not str(r.note) else str(r.note),
        ]
        for _, r in rows.iterrows()
    ]  # fmt: skip
    grid_best = [
        "grid (best)", fmt_int(first.grid_runs), fmt_metric(0.0), fmt_metric(first.grid_best_val_metric),
        fmt_metric(first.grid_best_test_metric), fmt_int(first.grid_runs), fmt_seconds(first.grid_seconds),
        fmt_percent(1.0), "every grid config", MISSING,
    ]  # fmt: skip
    columns = [
        ("method", False), ("k", True), ("regret", True), (f"val {metric}", True), (f"test {metric}", True),
        ("runs", True), ("seconds", True), ("of grid seconds", True), ("configs", False), ("note", False),
    ]  # fmt: skip
    caption = f"grid: {fmt_int(first.grid_runs)} runs, {fmt_seconds(first.grid_seconds)} s"
    return Table.build(columns, body + [grid_best], caption=caption)


def _top1_test_table(loto: pd.DataFrame, methods: list[str], tasks: list[str]) -> Table:
    """Per task (in its own primary metric): the grid best's test score and each method's top-1's."""
    top1 = loto[loto["k"] == loto["k"].min()]  # the top-1 config is the same whatever k
    rows = []
    for task in tasks:
        task_rows = top1[top1["task"] == task]
        if task_rows.empty:
            continue
        test_by_method = task_rows.groupby("method")["test_metric"].first()
        rows.append(
            [task, _metric_of(task_rows), fmt_metric(task_rows["grid_best_test_metric"].iloc[0])]
            + [fmt_metric(test_by_method.get(method)) for method in methods]
        )
    columns = [("task", False), ("metric", False), ("grid (best)", True)] + [(method, True) for method in methods]
    return Table.build(columns, rows, caption="test score of each method's top-1 config, in each task's metric")


def _pivot_table(pivot: pd.DataFrame, fmt, caption: str) -> Table:
    """``pivot``: methods x k."""
    rows = [[str(method)] + [fmt(value) for value in values] for method, values in pivot.iterrows()]
    return Table.build([("method", False)] + [(f"k={k}", True) for k in pivot.columns], rows, caption=caption)


# --- HPO strategies ----------------------------------------------------------------------------


def strategies_section(params: Params, results: ResultsTree) -> dict:
    """The replay benchmark per model family (benchmark stage) and the real tuning runs (tune stage)."""
    return {**_benchmark_part(params, results), **_tune_part(params, results)}


def _strategy_color(strategy: str, order: list[str]) -> str:
    """A registered strategy has the same colour in every figure (its place in ``STRATEGIES``)."""
    position = STRATEGIES.index(strategy) if strategy in STRATEGIES else len(STRATEGIES) + order.index(strategy)
    return f"C{position % 10}"


def _benchmark_part(params: Params, results: ResultsTree) -> dict:
    stage_note = results.missing_stage("benchmark", "benchmark")
    if stage_note:
        return {"benchmark_notes": [stage_note], "families": []}
    regret, regret_note = results.benchmark_regret()
    summary, summary_note = results.benchmark_summary()
    if summary is not None:
        summary = _family_summaries(summary)
        if summary is None:
            summary_note = "not available: benchmark/summary.json is not an object keyed by family"
    notes = [note for note in (regret_note, summary_note) if note]
    regret_families = set(regret["family"]) if regret is not None else set()
    blocks = []
    for family in _display_order(set(summary or {}) | regret_families, list(params.families)):
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
                **(_regret_figures(rows) if rows is not None else {"trials_figure": None, "cost_figure": None}),
            }
        )
    return {"benchmark_notes": notes, "families": blocks}


def _family_summaries(summary: Any) -> Optional[dict[str, dict]]:
    """family -> ``{"records", "note"}`` from summary.json; None if it is not keyed by family.

    Two layouts are read: ``{family: {"records", "note"}}``, and the same under a ``"families"`` key
    beside the run's settings, with the records under ``"summary"``.
    """
    if not isinstance(summary, dict):
        return None
    families = summary.get("families", summary)
    if not isinstance(families, dict) or not all(isinstance(entry, dict) for entry in families.values()):
        return None
    return {
        family: {
            "records": entry.get("records", entry.get("summary")),
            "note": entry.get("note"),
            "resolution": entry.get("resolution"),
        }
        for family, entry in families.items()
    }


def _regret_figures(rows: pd.DataFrame) -> dict:
    """Mean regret (95% band) against trials, and against cumulative seconds on a shared cost grid."""
    order = _display_order(rows["strategy"], STRATEGIES)
    on_grid, grid, log_cost = _regret_on_cost_grid(rows)
    return {
        "trials_figure": figures.regret_curves_figure(_regret_curves(metrics.mean_regret(rows), order), "trial"),
        "cost_figure": figures.regret_curves_figure(
            _regret_curves(metrics.mean_regret(on_grid), order, grid), "cumulative seconds", log_x=log_cost
        ),
    }


def _regret_curves(mean: pd.DataFrame, order: list[str], grid: Optional[np.ndarray] = None) -> list[dict]:
    """``metrics.mean_regret`` rows as figure curves; with ``grid``, trial n stands for ``grid[n - 1]``."""
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
    and its last value after its last trial (as ``metrics.complete_runs`` carries it). In the table
    returned, ``trial`` n is grid point n, so ``metrics.mean_regret`` averages it exactly as it does
    trials: over tasks, then seeds, with a 95% interval over seeds.
    """
    grid, log_cost = _cost_grid(rows["cost"].to_numpy(dtype=float))
    grid_points = np.arange(1, len(grid) + 1)
    runs = []
    for (strategy, task, seed), run in rows.sort_values("trial").groupby(metrics.RUN, sort=True):
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
    """``metrics.summarize`` rows (summary.json): regret@k ±95% half-interval, rank, time to each target."""
    summary = pd.DataFrame(records)
    checkpoints = sorted(int(c.removeprefix("regret@")) for c in summary.columns if re.fullmatch(r"regret@\d+", c))
    targets = sorted(  # the looser target first, as metrics.TARGETS lists them
        (c.removeprefix("trials_to_") for c in summary.columns if c.startswith("trials_to_")), key=float, reverse=True
    )
    summary = summary.set_index("strategy").loc[_display_order(summary["strategy"], STRATEGIES)]
    rows = [
        [str(strategy)]
        + [_fmt_interval(row[f"regret@{k}"], row[f"regret@{k}_low"], row[f"regret@{k}_high"]) for k in checkpoints]
        + [fmt_fixed(row["rank@last"], 2)]
        + [
            cell
            for t in targets
            for cell in (
                _fmt_median(row[f"trials_to_{t}"], fmt_number),
                _fmt_median(row[f"cost_to_{t}"], fmt_seconds),
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
    return Table.build(columns, rows, caption="mean normalised regret ±95% interval; median trials and seconds")


def _resolution_table(records: list[dict]) -> Table:
    """``metrics.objective_resolution`` rows: how fine each task's objective is against the regret targets."""
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


def _fmt_interval(mean: Any, low: Any, high: Any) -> str:
    if is_missing(low) or is_missing(high):
        return fmt_metric(mean)
    return f"{fmt_metric(mean)} ±{fmt_metric((float(high) - float(low)) / 2)}"


def _fmt_median(value: Any, fmt) -> str:
    """A median over runs, half or more of which never reached the target, is infinite (null in JSON)."""
    return "not reached" if is_missing(value) or math.isinf(float(value)) else fmt(value)


def _tune_part(params: Params, results: ResultsTree) -> dict:
    stage_note = results.missing_stage("tune", "tune")
    if stage_note:
        return {"tune_notes": [stage_note], "tuned": []}
    tasks = _display_order(results.tuned_tasks(), list(params.tasks))
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
        return _metric_of(frame)
    sweep, _ = results.sweep(task)
    return _metric_of(sweep) if sweep is not None and len(sweep) else "metric"


def _tune_block(frame: pd.DataFrame, metric: str) -> dict:
    """Per strategy: the best-so-far curves, and its best trial: the first whose val metric is the
    final best so far (the stage counts full evaluations only there, never a partial one)."""
    order = _display_order(frame["strategy"], STRATEGIES)
    runs, rows, notes = [], [], []
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
        rows.append(
            [
                strategy,
                fmt_int(len(run)),
                fmt_int(len(finished)),
                *(
                    (MISSING,) * 5
                    if best is None
                    else (
                        fmt_metric(best.val_metric), fmt_metric(best.test_metric), fmt_config(best.config),
                        fmt_int(best.trial), fmt_seconds(best.cumulative_seconds),
                    )
                ),  # fmt: skip
                fmt_seconds(run["cumulative_seconds"].max()),
            ]
        )
        notes += [f"{strategy}: {note}" for note in dict.fromkeys(run["note"].dropna().astype(str)) if note]
    columns = [
        ("strategy", False), ("trials", True), ("ok", True), (f"best val {metric}", True),
        (f"test {metric} of the best", True), ("best config", False), ("found at trial", True),
        ("seconds to the best", True), ("total seconds", True),
    ]  # fmt: skip
    return {
        "notes": notes,
        "table": Table.build(columns, rows),
        "figure": figures.best_so_far_figure(runs, ylabel=f"best val {metric} so far"),
    }


# --- convergence -------------------------------------------------------------------------------


def convergence_section(params: Params, results: ResultsTree) -> dict:
    recommendations, rec_note = results.recommendations()
    recommendations = recommendations or {}
    grid_seconds = _grid_seconds(params, results)
    trained, notes = _load_each(
        list(params.tasks), results.train_metrics, results.missing_stage("train", "train_recommended")
    )
    columns = [
        ("task", False), ("method", False), ("recommended config", False), ("state", False), ("metric", False),
        ("test", True), ("all test metrics", False), ("best val", True), ("threshold", True),
        ("epochs to threshold / run", True), ("seconds to threshold", True), ("total seconds", True),
        ("grid seconds", True), ("of grid seconds", True),
    ]  # fmt: skip
    rows = []
    for task in params.tasks:
        metrics = trained.get(task)
        if metrics is None:
            recommended = recommendations.get(task, {})
            known = [task, str(recommended.get("method", MISSING)), fmt_config(recommended.get("config"))]
            grid_columns = [fmt_seconds(grid_seconds.get(task)), MISSING]  # grid seconds, of grid seconds
            unknown = [MISSING] * (len(columns) - len(known) - 1 - len(grid_columns))
            rows.append(known + [NOT_AVAILABLE] + unknown + grid_columns)
            continue
        seconds = metrics.get("seconds")
        grid = grid_seconds.get(task)
        rows.append(
            [
                task,
                str(metrics.get("method", MISSING)),
                fmt_config(metrics.get("config")),
                str(metrics.get("state", MISSING)),
                str(metrics.get("metric", MISSING)),
                fmt_metric(metrics.get("test_metric")),
                fmt_scores(metrics.get("test_metrics")),
                fmt_metric(metrics.get("best_val_metric")),
                f"{fmt_number(metrics.get('threshold'))} × best",
                fmt_int(metrics.get("epochs_to_convergence")) + " / " + fmt_int(metrics.get("epochs_run")),
                fmt_seconds(metrics.get("seconds_to_convergence")),
                fmt_seconds(seconds),
                fmt_seconds(grid),
                fmt_percent(seconds / grid) if not is_missing(seconds) and not is_missing(grid) and grid else MISSING,
            ]
        )
    if rec_note and notes:
        notes.append(f"recommendations: {rec_note}")
    return {"notes": notes, "table": Table.build(columns, rows)}


def _grid_seconds(params: Params, results: ResultsTree) -> dict[str, float]:
    """task -> seconds the whole grid took: meta/loto.parquet's figure, else the sweep's grid trials."""
    seconds: dict[str, float] = {}
    loto, _ = results.loto()
    if loto is not None:
        seconds.update(loto.groupby("task")["grid_seconds"].first().dropna().to_dict())
    for task in params.tasks:
        if task not in seconds:
            sweep, _ = results.sweep(task)
            if sweep is not None and (sweep["search"] == "grid").any():
                seconds[task] = float(sweep.loc[sweep["search"] == "grid", "seconds"].sum())
    return seconds


# --- provenance --------------------------------------------------------------------------------


def provenance_section(params_path: Path, results: ResultsTree, params: Params) -> dict:
    notes = []
    try:
        params_text = params_path.read_text(encoding="utf-8")
    except OSError as err:
        params_text = None
        notes.append(f"not available: params file {params_path} could not be read ({err})")
    facts = [
        ("params file", str(params_path)),
        ("git revision", provenance.git_revision(params_path.resolve().parent)),
        ("report device", provenance.device_name()),
        ("devices used by sweeps and training", ", ".join(_devices_used(params, results)) or MISSING),
        ("generated (UTC)", provenance.generated_at()),
    ] + [(f"{name} version", version) for name, version in provenance.package_versions().items()]
    table = Table.build([("item", False), ("value", False)], [[k, v] for k, v in facts])
    return {"notes": notes, "params_text": params_text, "table": table}


def _devices_used(params: Params, results: ResultsTree) -> list[str]:
    devices: set[str] = set()
    for task in params.tasks:
        sweep, _ = results.sweep(task)
        if sweep is not None and "device" in sweep.columns:
            devices.update(str(d) for d in sweep["device"].dropna().unique())
        metrics, _ = results.train_metrics(task)
        if metrics and metrics.get("device"):
            devices.add(str(metrics["device"]))
    return sorted(devices)
