"""The leave-one-task-out section: each method's regret and cost per held-out task, and their means.

When meta/loto.parquet carries the safe rule's columns (fit_meta since issue 14), a table per task
says whether the safe rule fell back to the default and why, the top-1's predicted normalised score
with its interval, and the default's, the surrogate's and the safe rule's top-1 regret side by side.
"""

from __future__ import annotations

import json

import pandas as pd

from metahpo.report import figures
from metahpo.report.common import display_order, loto_means, metric_of, with_ci
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import MISSING, Table, config_table, fmt_int, fmt_metric, fmt_percent, fmt_seconds, is_missing

METHODS = ("surrogate", "nearest", "portfolio", "default", "safe")  # display order; others follow by name
SAFE_COLUMNS = ("predicted", "lower", "upper", "fallback", "reason")  # older loto tables lack them


def build(inputs: ReportInputs) -> dict:
    params = inputs.params
    loto, note = inputs.results.loto()
    if loto is None:
        return {"notes": [note], "tasks": [], "summaries": [], "figure": None}
    methods = display_order(loto["method"], METHODS)
    ks = sorted(int(k) for k in loto["k"].unique())
    means = loto_means(loto)
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
        blocks.append({"task": task, "notes": [], "table": _loto_task_table(rows), "configs": _configs_table(rows)})
    mean_regret, regret_half, mean_share = (
        means[column].unstack("k").reindex(index=methods, columns=ks)
        for column in ("regret", "regret_half", "seconds_share")
    )
    regret_cells = pd.DataFrame(
        [[with_ci(mean_regret.at[m, k], regret_half.at[m, k]) for k in ks] for m in methods], index=methods, columns=ks
    )
    summaries = [
        _pivot_table(
            regret_cells, str, "mean regret ±95% interval over the held-out tasks: "
            "(grid-best val metric - best of the k) / (grid best - grid worst)",
        ),
        _pivot_table(mean_share, fmt_percent, "mean seconds spent, as a share of the whole grid's"),
        _top1_test_table(loto, methods, tasks),
    ]
    notes = []
    if "safe" in methods and all(c in loto.columns for c in SAFE_COLUMNS):
        safe_table, safe_note = _safe_table(loto, tasks)
        summaries.append(safe_table)
        notes.append(safe_note)
    figure = figures.tradeoff_figure(_tradeoff_series(means, methods), "share of the grid's seconds")
    return {"notes": notes, "tasks": blocks, "summaries": summaries, "figure": figure}


def _tradeoff_series(means: pd.DataFrame, methods: list[str]) -> list[dict]:
    """Per method, its (k, seconds share, mean regret) points with their 95% intervals over the tasks."""
    series = []
    for index, method in enumerate(methods):
        rows = means.loc[method].sort_index()
        share, share_half = rows["seconds_share"], rows["seconds_share_half"]
        series.append(
            {
                "label": method, "color": f"C{index % 10}", "trials": list(rows.index),
                "cost": share, "cost_low": share - share_half, "cost_high": share + share_half,
                "mean": rows["regret"], "low": rows["regret"] - rows["regret_half"],
                "high": rows["regret"] + rows["regret_half"],
            }
        )  # fmt: skip
    return series


def _loto_task_table(rows: pd.DataFrame) -> Table:
    first = rows.iloc[0]
    metric = metric_of(rows)
    body = [
        [
            str(r.method), fmt_int(r.k), fmt_metric(r.regret), fmt_metric(r.val_metric), fmt_metric(r.test_metric),
            fmt_int(r.runs), fmt_seconds(r.seconds), fmt_percent(r.seconds_share),
            MISSING if is_missing(r.note) or not str(r.note) else str(r.note),
        ]
        for _, r in rows.iterrows()
    ]  # fmt: skip
    grid_best = [
        "grid (best)", fmt_int(first.grid_runs), fmt_metric(0.0), fmt_metric(first.grid_best_val_metric),
        fmt_metric(first.grid_best_test_metric), fmt_int(first.grid_runs), fmt_seconds(first.grid_seconds),
        fmt_percent(1.0), MISSING,
    ]  # fmt: skip
    columns = [
        ("method", False), ("k", True), ("regret", True), (f"val {metric}", True), (f"test {metric}", True),
        ("runs", True), ("seconds", True), ("of grid seconds", True), ("note", False),
    ]  # fmt: skip
    caption = f"grid: {fmt_int(first.grid_runs)} runs, {fmt_seconds(first.grid_seconds)} s"
    return Table.build(columns, body + [grid_best], caption=caption)


def _configs_table(rows: pd.DataFrame) -> Table:
    """Each method's configs in its order, a column per hyperparameter: k tries the first k of them.

    The largest k's row lists them all (a smaller k's is its prefix), so each config is shown once.
    """
    body = []
    for _, r in rows.groupby("method", sort=False).tail(1).iterrows():  # rows are sorted by method, then k
        try:
            configs = json.loads(r.configs) if isinstance(r.configs, str) else list(r.configs)
        except (json.JSONDecodeError, TypeError):
            configs = []
        body += [([str(r.method), str(rank)], config) for rank, config in enumerate(configs, start=1)]
    return config_table([("method", False), ("rank", True)], body, caption="configs in each method's order")


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
            [task, metric_of(task_rows), fmt_metric(task_rows["grid_best_test_metric"].iloc[0])]
            + [fmt_metric(test_by_method.get(method)) for method in methods]
        )
    columns = [("task", False), ("metric", False), ("grid (best)", True)] + [(method, True) for method in methods]
    return Table.build(columns, rows, caption="test score of each method's top-1 config, in each task's metric")


def _safe_table(loto: pd.DataFrame, tasks: list[str]) -> tuple[Table, str]:
    """Per task: the safe rule's verdict, its top-1's predicted interval, and three methods' top-1 regret."""
    top1 = loto[loto["k"] == loto["k"].min()]
    rows, fell_back, covered, intervals = [], 0, 0, 0
    for task in tasks:
        by_method = top1[top1["task"] == task].set_index("method")
        if "safe" not in by_method.index:
            continue
        safe = by_method.loc["safe"]
        actual = 1.0 - safe.regret  # the top-1's normalised score on the held-out task
        interval = MISSING
        if not is_missing(safe.lower):
            interval = f"[{fmt_metric(safe.lower)}, {fmt_metric(safe.upper)}]"
            intervals += 1
            covered += bool(safe.lower <= actual <= safe.upper)
        fell_back += bool(safe.fallback)
        regrets = [fmt_metric(by_method.regret.get(m)) for m in ("default", "surrogate", "safe")]
        rows.append([task, str(safe.fallback) or "no", str(safe.reason) or MISSING, fmt_metric(safe.predicted),
                     interval, fmt_metric(actual)] + regrets)  # fmt: skip
    columns = [
        ("task", False), ("fallback", False), ("why", False), ("predicted", True), ("interval", True),
        ("actual", True), ("default regret", True), ("surrogate regret", True), ("safe regret", True),
    ]  # fmt: skip
    caption = "safe rule top-1: predicted and actual normalised score (1 = grid best), and top-1 regret"
    note = (f"safe rule: {fell_back} of {len(rows)} held-out tasks fell back to the family's default config; "
            f"the top-1's interval held its actual normalised score in {covered} of {intervals}")  # fmt: skip
    return Table.build(columns, rows, caption=caption), note


def _pivot_table(pivot: pd.DataFrame, fmt, caption: str) -> Table:
    """``pivot``: methods x k."""
    rows = [[str(method)] + [fmt(value) for value in values] for method, values in pivot.iterrows()]
    return Table.build([("method", False)] + [(f"k={k}", True) for k in pivot.columns], rows, caption=caption)


SECTION = SECTIONS.register(Section("loto", "Leave-one-task-out evaluation", build))
