"""The lr_control section: a meta-learned learning-rate controller against fixed, scheduled and adaptive rates.

Reads the lr_meta stage (``lr_meta/controller/meta_training.json``: the controller's config, the
evolution strategies' settings, history, best iteration and cost) and the lr_eval stage
(``lr_eval/summary.json``: the held-out tasks, the per-method table, the step ratios, the final
gaps and the targets; ``lr_eval/runs.parquet``: one row per task, method and seed, the oracle's
grid as method "grid"; ``lr_eval/traces.parquet``: each run's rate and validation every
``trace_every`` steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from metahpo.report import figures
from metahpo.report.common import bracket, display_order, listed, stage_object, summary_rows, with_ci
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import (MISSING, Table, as_float, fmt_fixed, fmt_int, fmt_metric, fmt_number, fmt_seconds,
                                   is_missing)

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import LRControlParams, Params


REFERENCE = "meta"  # the learned controller: the step ratios and the targets are about it
GRID = "grid"  # runs.parquet's method for the oracle's fixed-rate grid: runs, not a method compared
OFF_NOTE = (
    "The learning-rate controller is off in this profile (lr_control: null in the params): no controller was "
    "meta-trained and no learning-rate method was compared."
)
MAX_LISTED_RUNS = 8  # per task, runs that did not finish are named up to this many, then counted
STATS = (
    # (summary column, header, decimals): the threshold table, then the final-metrics table
    ("steps_to_threshold", "steps to threshold", 1), ("epochs_to_threshold", "epochs to threshold", 2),
    ("seconds_to_threshold", "seconds to threshold", 2), ("seconds", "run seconds", 2),
    ("final_val_metric", "final val metric", 3), ("auc", "mean val metric over the run", 3),
    ("test_accuracy", "test accuracy", 3), ("test_macro_precision", "test macro precision", 3),
    ("test_macro_recall", "test macro recall", 3), ("test_macro_f1", "test macro F1", 3),
)  # fmt: skip
THRESHOLD_STATS = STATS[:4]
FINAL_STATS = STATS[4:]


def build(inputs: ReportInputs) -> dict:
    data = {"off": None, "setup": [], "methods_table": None, "held_out_notes": [], "held_out_table": None,
            "targets_notes": [], "targets_table": None, "targets_line": None, "results_notes": [], "tasks": [],
            "ratios_notes": [], "ratios_table": None, "ratios_figure": None, "training_notes": [],
            "training_figure": None, "training_lines": [], "cost_table": None}  # fmt: skip
    control, results = inputs.params.lr_control, inputs.results
    summary, summary_note = _summary(results)
    if control is None or (summary is not None and summary.get("enabled") is False):
        return {**data, "off": OFF_NOTE}
    training, training_note = _training(results)
    runs, traces, results_notes = _frames(results, summary_note)
    table = summary_rows(summary, "table", "method")
    methods = display_order(
        [*listed(summary, "methods"), *control.methods, *(row["method"] for row in table),
         *(traces["method"].astype(str) if traces is not None else [])],
        listed(summary, "methods") or list(control.methods),
    )  # fmt: skip
    held_out = {row["task"]: row for row in summary_rows(summary, "tasks", "task")}
    preferred = list(held_out) or list(control.eval_tasks)
    tasks = display_order(
        [*preferred, *control.eval_tasks, *(row["task"] for row in table),
         *(traces["task"].astype(str) if traces is not None else [])],
        preferred,
    )  # fmt: skip
    data["setup"] = _setup(inputs.params, control, summary, training)
    data["methods_table"] = _methods_table(summary, methods)
    data.update(_held_out(inputs.params, control, summary, summary_note, held_out, tasks))
    data.update(_targets(summary, summary_note))
    data["results_notes"] = results_notes
    if summary is not None or runs is not None or traces is not None:  # else the notes above say why: no blocks
        data["tasks"] = [
            _task_block(task, held_out.get(task, {}), table, runs, traces, methods, summary) for task in tasks
        ]
    data.update(_ratios(summary, summary_note, tasks, methods))
    data.update(_meta_training(training, training_note, summary, held_out, tasks, runs))
    return data


def _summary(results: ResultsTree) -> tuple[Optional[dict], Optional[str]]:
    return stage_object(results, "lr_eval", results.lr_eval_summary, "lr_eval/summary.json")


def _training(results: ResultsTree) -> tuple[Optional[dict], Optional[str]]:
    training, note = stage_object(results, "lr_meta", results.lr_meta_training, "lr_meta/controller/meta_training.json")
    if training is not None and training.get("enabled") is False:
        return None, "lr_meta ran with lr_control: null: no controller was meta-trained (rerun the lr_meta stage)"
    return training, note


Frames = tuple[Optional[pd.DataFrame], Optional[pd.DataFrame], list[str]]


def _frames(results: ResultsTree, summary_note: Optional[str]) -> Frames:
    """runs.parquet and traces.parquet, and the notes for those missing (one note if the stage is)."""
    stage_note = results.missing_stage("lr_eval")
    if stage_note:  # the summary's note already says it
        return None, None, [stage_note] if summary_note != stage_note else []
    runs, runs_note = results.lr_eval_runs()
    traces, traces_note = results.lr_eval_traces()
    if traces is not None:
        traces = traces[traces["method"] != GRID]  # the grid's runs are the oracle's cost, not a method
    return runs, traces, [note for note in (runs_note, traces_note) if note]


def _method_color(method: str, methods: list[str]) -> str:
    """A method has the same colour in every figure of the section: its place in the method order."""
    return f"C{methods.index(method) % 10}"


def _setting(summary: Optional[dict], control: LRControlParams, key: str) -> Any:
    """What ran (the summary's value), else what the params ask for."""
    value = (summary or {}).get(key)
    return getattr(control, key) if value is None else value


def _setup(params: Params, control: LRControlParams, summary: Optional[dict], training: Optional[dict]) -> list[str]:
    """How the problem was posed: what ran (the summary's and the lr_meta record's values), else the params'."""
    meta_train = listed(summary, "meta_train_tasks") or listed(training, "tasks") or list(control.meta_train_tasks)
    datasets = display_order({params.tasks[t].dataset for t in meta_train if t in params.tasks}, [])
    families = display_order({params.tasks[t].family for t in meta_train if t in params.tasks}, [])
    steps, seeds = _setting(summary, control, "steps"), _setting(summary, control, "seeds")
    batch, every = _setting(summary, control, "batch_size"), _setting(summary, control, "trace_every")
    device = (summary or {}).get("device")
    lines = [
        f"Meta-train tasks: {', '.join(meta_train)} (datasets {', '.join(datasets) or MISSING}; families "
        f"{', '.join(families) or MISSING}); the methods are compared on the held-out tasks below, never "
        "meta-trained on.",
        f"Every run: {fmt_int(steps)} optimizer steps at batch size {fmt_int(batch)}, the same model per task for "
        f"every method, {fmt_int(seeds)} seeds per method and task; validation every {fmt_int(every)} steps"
        + (f"; run on {device}." if device else "."),
        f"Threshold: {fmt_number(_setting(summary, control, 'threshold'))} × the oracle's mean final validation "
        "metric; steps to threshold is the first validation at or above it. The oracle is the best fixed Adam rate of "
        f"the grid {', '.join(fmt_number(lr) for lr in control.oracle_grid)} run on the task itself, every rate with "
        "every seed.",
    ]
    config = (training or {}).get("config")
    config = config if isinstance(config, dict) else {}
    knobs = control.meta_train
    features = config.get("features")
    reads = f" reading {', '.join(str(name) for name in features)}" if isinstance(features, list) and features else ""
    change = config.get("max_change", knobs.max_change)
    bounds = ""
    if not is_missing(config.get("lr_min")) and not is_missing(config.get("lr_max")):
        bounds = f", kept within [{fmt_number(config['lr_min'])}, {fmt_number(config['lr_max'])}]"
    lines.append(
        f"Controller: an LSTM of {fmt_int(config.get('hidden', knobs.hidden))} units{reads}; every "
        f"{fmt_int(config.get('every', knobs.every))} steps it multiplies the rate by a factor between "
        f"1/{fmt_number(change)} and {fmt_number(change)}{bounds}."
    )
    return lines


def _methods_table(summary: Optional[dict], methods: list[str]) -> Table:
    descriptions = (summary or {}).get("descriptions")
    descriptions = descriptions if isinstance(descriptions, dict) else {}
    rows = [[method, str(descriptions.get(method) or MISSING)] for method in methods]
    return Table.build([("method", False), ("how it sets the rate", False)], rows, caption="the methods compared")


def _seen(unseen: Any) -> str:
    return MISSING if not isinstance(unseen, bool) else "unseen" if unseen else "seen in meta-training"


def _held_out(params: Params, control: LRControlParams, summary: Optional[dict], summary_note: Optional[str],
              held_out: dict[str, dict], tasks: list[str]) -> dict:  # fmt: skip
    """One row per held-out task: what it shares with the meta-train tasks and its oracle (the summary's, else
    the params' task with the rest as dashes)."""
    notes = [summary_note] if summary_note else []
    if summary is not None and not held_out:
        notes.append("not available: lr_eval/summary.json has no task rows")
    meta_train = listed(summary, "meta_train_tasks") or control.meta_train_tasks

    columns = [
        ("task", False), ("dataset", False), ("its dataset", False), ("family", False), ("its family", False),
        ("oracle lr", True), ("recommended lr", True), ("threshold (val metric)", True), ("oracle grid s", True),
    ]  # fmt: skip
    rows = []
    for task in tasks:
        row = held_out.get(task)
        if row is None and task not in params.tasks:
            continue
        if row is None:  # from the params: the rest ran nowhere yet
            spec = params.tasks[task]
            family = params.registered_family(spec.family) if spec.family in params.families else spec.family
            unseen_dataset, unseen_family = (params.unseen_in_meta_training(task, meta_train)
                                             if spec.dataset in params.datasets else (None, None))  # fmt: skip
            row = {"dataset": spec.dataset, "family": family, "unseen_dataset": unseen_dataset,
                   "unseen_family": unseen_family}  # fmt: skip
        rows.append(
            [
                task, str(row.get("dataset") or MISSING), _seen(row.get("unseen_dataset")),
                str(row.get("family") or MISSING), _seen(row.get("unseen_family")), fmt_number(row.get("oracle_lr")),
                fmt_number(row.get("recommended_lr")), fmt_metric(row.get("threshold_value")),
                fmt_seconds(row.get("oracle_seconds")),
            ]
        )  # fmt: skip
    caption = (
        "the held-out tasks: whether their dataset and model family were among the meta-train tasks', the oracle's "
        "rate, the meta-model's recommended rate and the absolute threshold"
    )
    return {"held_out_notes": notes, "held_out_table": Table.build(columns, rows, caption=caption) if rows else None}


VERDICTS = {True: "met", False: "not met", None: "not measured"}


def _targets(summary: Optional[dict], summary_note: Optional[str]) -> dict:
    empty = {"targets_table": None, "targets_line": None}
    if summary is None:
        return {"targets_notes": [summary_note] if summary_note else [], **empty}
    targets = summary_rows(summary, "targets", "name")
    if not targets:
        return {"targets_notes": ["not available: lr_eval/summary.json has no targets"], **empty}
    columns = [("target", False), ("value", True), ("95% CI", True), ("goal", True), ("verdict", False)]
    rows, by_verdict = [], {verdict: [] for verdict in VERDICTS.values()}
    for target in targets:
        met = target.get("met")
        verdict = VERDICTS[met if isinstance(met, bool) else None]
        by_verdict[verdict].append(target["name"])
        goal = target.get("target")
        rows.append(
            [
                target["name"], fmt_fixed(target.get("value"), 2), bracket(target.get("low"), target.get("high")),
                MISSING if is_missing(goal) else f"≤ {fmt_number(goal)}", verdict,
            ]
        )  # fmt: skip
    line = f"{len(by_verdict['met'])} of {len(targets)} targets met" + "".join(
        f"; {verdict}: {', '.join(names)}" for verdict, names in by_verdict.items() if names
    ) + "."  # fmt: skip
    caption = (
        f"the targets: steps to threshold, {REFERENCE} / baseline over every held-out task (lower: fewer steps), met "
        "when the ratio is at most its goal and its whole interval below 1; and the largest gap over the held-out "
        f"tasks between the best other method's mean test accuracy and {REFERENCE}'s, in points"
    )
    return {"targets_notes": [], "targets_table": Table.build(columns, rows, caption=caption), "targets_line": line}


def _task_block(task: str, held_out: dict, table: list[dict], runs: Optional[pd.DataFrame],
                traces: Optional[pd.DataFrame], methods: list[str], summary: Optional[dict]) -> dict:  # fmt: skip
    """One held-out task: its grid, its two figures, its tables and the runs that did not finish."""
    block = {"task": task, "lines": [], "notes": [], "lr_figure": None, "val_figure": None, "threshold_table": None,
             "final_table": None}  # fmt: skip
    if runs is not None:
        of_task = runs[runs["task"].astype(str) == task]
        block["lines"] += _grid_line(of_task[of_task["method"] == GRID], held_out.get("oracle_lr"))
        block["notes"] += _unfinished(of_task)
    block["lines"] += _gap_line(task, summary)
    if traces is not None:
        own = traces[traces["task"].astype(str) == task]
        if len(own):
            block.update(_figures(own, methods, held_out.get("threshold_value")))
        else:
            block["notes"].append(f"not available: lr_eval/traces.parquet has no rows for {task}")
    rows = {row["method"]: row for row in table if row.get("task") is not None and str(row["task"]) == task}
    if summary is not None and not rows:
        block["notes"].append(f"not available: lr_eval/summary.json has no table rows for {task}")
    if rows:
        block.update(_method_tables(task, rows, methods, summary))
    return block


def _grid_line(grid: pd.DataFrame, oracle: Any) -> list[str]:
    """The oracle's grid: each fixed rate's mean final val metric over the seeds that finished."""
    if not len(grid):
        return []
    parts = []
    for lr, runs in grid.groupby("lr_start"):
        finished = runs[runs["state"] == "ok"]["final_val_metric"].dropna()
        part = f"{fmt_number(lr)}: {fmt_metric(finished.mean()) if len(finished) else MISSING}"
        failed = int((runs["state"] != "ok").sum())
        if failed:
            part += f" ({failed} of {len(runs)} runs did not finish)"
        if not is_missing(oracle) and np.isclose(float(lr), float(oracle)):
            part += " (the oracle)"
        parts.append(part)
    return [f"Oracle grid, fixed-rate Adam, mean final validation metric over seeds: {'; '.join(parts)}."]


def _gap_line(task: str, summary: Optional[dict]) -> list[str]:
    gap = next((row for row in summary_rows(summary, "gaps", "task") if row["task"] == task), None)
    if gap is None or is_missing(gap.get("gap_points")):
        return []
    metric = str(gap.get("metric") or "test_accuracy").replace("_", " ")
    points = float(gap["gap_points"])
    side = "behind" if points > 0 else "ahead of" if points < 0 else "level with"
    return [
        f"Final {metric}: {REFERENCE} {fmt_metric(gap.get('value'))}, the best other method ({gap.get('best') or MISSING}) "
        f"{fmt_metric(gap.get('best_value'))}: {REFERENCE} is {abs(points):.2f} points {side} it."
    ]


def _unfinished(runs: pd.DataFrame) -> list[str]:
    failed = runs[runs["state"] != "ok"]
    notes = []
    for _, run in failed.head(MAX_LISTED_RUNS).iterrows():
        message = run["message"] if isinstance(run["message"], str) and run["message"] else "no message"
        where = f"{run['method']} at lr {fmt_number(run['lr_start'])}" if run["method"] == GRID else str(run["method"])
        notes.append(f"{where}, seed {fmt_int(run['seed'])}: {run['state']}: {message}")
    if len(failed) > MAX_LISTED_RUNS:
        notes.append(f"and {len(failed) - MAX_LISTED_RUNS} more runs that did not finish")
    return notes


def _figures(traces: pd.DataFrame, methods: list[str], threshold: Any) -> dict:
    """The rate and the validation metric against steps, one line per method, over the seeds still running."""
    lr_curves, val_curves = [], []
    for method in display_order(traces["method"].astype(str), methods):
        own = traces[traces["method"].astype(str) == method]
        color = _method_color(method, methods)
        style = {"linewidth": 2.2} if method == REFERENCE else {}  # the controller stands out among ten lines
        # geometric mean: the rates of a method's seeds differ by factors, and the axis is logarithmic
        rates = own.assign(log_lr=np.log(own["lr"].where(own["lr"] > 0))).groupby("step")["log_lr"].mean()
        lr_curves.append({"label": method, "color": color, "x": rates.index, "y": np.exp(rates.values),
                          "style": style})  # fmt: skip
        metric = own.groupby("step")["val_metric"].mean()
        val_curves.append({"label": method, "color": color, "x": metric.index, "y": metric.values, "style": style})
    return {
        "lr_figure": figures.lines_figure(lr_curves, "optimizer step", "learning rate", log_y=True),
        "val_figure": figures.lines_figure(
            val_curves, "optimizer step", "val metric", threshold=None if is_missing(threshold) else float(threshold)
        ),
    }


def _method_tables(task: str, rows: dict[str, dict], methods: list[str], summary: Optional[dict]) -> dict:
    """Steps to threshold and the final metrics per method: means over seeds with 95% t half-widths."""
    order = display_order(rows, methods)
    threshold_rows, final_rows = [], []
    for method in order:
        row = rows[method]
        seeds = row.get("seeds")
        reached = f"{fmt_int(row.get('reached'))}/{fmt_int(seeds)}"
        stats = [with_ci(row.get(key), row.get(f"{key}_ci"), digits) for key, _, digits in THRESHOLD_STATS]
        threshold_rows.append([method, fmt_int(seeds), fmt_int(row.get("diverged")), reached, *stats])
        final_rows.append(
            [method, *(with_ci(row.get(key), row.get(f"{key}_ci"), digits) for key, _, digits in FINAL_STATS)]
        )
    threshold = fmt_number((summary or {}).get("threshold"))
    threshold_columns = [("method", False), ("seeds", True), ("diverged / failed", True), ("reached", True)]
    threshold_columns += [(f"{header} ±95%", True) for _, header, _ in THRESHOLD_STATS]
    final_columns = [("method", False)] + [(f"{header} ±95%", True) for _, header, _ in FINAL_STATS]
    return {
        "threshold_table": Table.build(threshold_columns, threshold_rows, caption=(
            f"{task}: time to {threshold} × the oracle's final validation metric; means over the seeds that reached "
            "it (reached: how many of the seeds did)"
        )),
        "final_table": Table.build(final_columns, final_rows, caption=(
            f"{task}: the metrics at the end of the budget, means over the seeds that finished"
        )),
    }  # fmt: skip


def _ratios(summary: Optional[dict], summary_note: Optional[str], tasks: list[str], methods: list[str]) -> dict:
    empty = {"ratios_table": None, "ratios_figure": None}
    if summary is None:
        return {"ratios_notes": [summary_note] if summary_note else [], **empty}
    ratios = [row for row in summary_rows(summary, "ratios", "task") if row.get("baseline") is not None]
    if not ratios:
        note = f"not available: lr_eval/summary.json has no step ratios (is {REFERENCE} in lr_control.methods?)"
        return {"ratios_notes": [note], **empty}
    task_order = display_order([row["task"] for row in ratios if row["task"] != "all"], tasks) + ["all"]
    baselines = display_order([str(row["baseline"]) for row in ratios], methods)
    by_key = {(row["task"], str(row["baseline"])): row for row in ratios}
    # the table and the figure both read these rows: tasks then all, baselines in method order
    shown = [(task, baseline, by_key[(task, baseline)]) for task in task_order for baseline in baselines
             if (task, baseline) in by_key]  # fmt: skip
    columns = [("task", False), ("baseline", False), ("paired runs", True), (f"{REFERENCE} / baseline steps", True),
               ("95% CI", True), ("reading", False)]  # fmt: skip
    rows = [[task, baseline, fmt_int(row.get("n")), fmt_fixed(row.get("ratio"), 2),
             bracket(row.get("low"), row.get("high")), _reading(row)] for task, baseline, row in shown]  # fmt: skip
    caption = (
        f"steps to threshold, {REFERENCE} / each baseline: the geometric mean over runs paired by task and seed with "
        "its 95% t-interval on the log ratios; a run that never reached the threshold counts as the whole budget"
    )
    return {"ratios_notes": [], "ratios_table": Table.build(columns, rows, caption=caption),
            "ratios_figure": figures.interval_dot_figure(_ratio_panels(shown, methods), share_x=True)}


def _ratio_panels(shown: list[tuple[str, str, dict]], methods: list[str]) -> list[dict]:
    """One panel per task (then all of them), one row per baseline: the ratio and its interval, in the
    baseline's colour of the task figures."""
    panels: dict[str, dict] = {}
    for task, baseline, row in shown:
        panel = panels.setdefault(task, {
            "title": "all held-out tasks" if task == "all" else task, "log_x": True, "reference": 1.0,
            "xlabel": f"{REFERENCE} / baseline steps", "rows": [],
        })  # fmt: skip
        color = _method_color(baseline, methods) if baseline in methods else "0.4"
        panel["rows"].append({"label": baseline, "color": color, "value": as_float(row.get("ratio")),
                              "low": as_float(row.get("low")), "high": as_float(row.get("high"))})  # fmt: skip
    return list(panels.values())


def _reading(row: dict) -> str:
    """The interval's plain reading: below 1 throughout is fewer steps for the controller."""
    low, high = row.get("low"), row.get("high")
    if is_missing(low) or is_missing(high):
        return MISSING
    if float(high) < 1:
        return f"{REFERENCE} fewer steps"
    if float(low) > 1:
        return f"{REFERENCE} more steps"
    return "no clear difference"


def _meta_training(training: Optional[dict], training_note: Optional[str], summary: Optional[dict],
                   held_out: dict[str, dict], tasks: list[str], runs: Optional[pd.DataFrame]) -> dict:  # fmt: skip
    """The controller's meta-training curve and its cost, beside what the oracle's grid cost per task."""
    notes = [training_note] if training_note else []
    fallback = (summary or {}).get("meta_training")
    fallback = fallback if isinstance(fallback, dict) else {}
    record = training or {}
    figure, lines = None, []
    if training is not None:
        history = record.get("history")
        history = [r for r in history if isinstance(r, dict)] if isinstance(history, list) else []
        figure = _training_figure(history, record.get("best_iteration"))
        if figure is None:
            notes.append("not available: lr_meta/controller/meta_training.json has no history")
        settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
        lines.append(
            f"Evolution strategies: {fmt_int(settings.get('iterations'))} iterations of "
            f"{fmt_int(settings.get('population'))} perturbed controllers (σ {fmt_number(settings.get('sigma'))}, "
            f"Adam at {fmt_number(settings.get('meta_lr'))} on the controller's "
            f"{fmt_int(record.get('parameters'))} weights), each a {fmt_int(settings.get('steps'))}-step training run; "
            f"the controller kept is the one of iteration {fmt_int(record.get('best_iteration'))}, meta-validation "
            f"score {fmt_metric(record.get('best_score'))}."
        )
    columns = [("what", False), ("training runs", True), ("seconds", True), ("device", False)]
    seconds, count = record.get("seconds", fallback.get("seconds")), record.get("runs", fallback.get("runs"))
    rows = []
    if not (is_missing(seconds) and is_missing(count)):
        on = ", ".join(listed(record, "tasks")) or "the meta-train tasks"
        device = record.get("device") or (summary or {}).get("device") or MISSING
        rows.append([f"meta-training the controller (once, on {on})", fmt_int(count), fmt_seconds(seconds),
                     str(device)])  # fmt: skip
    for task in tasks:
        grid = runs[(runs["task"].astype(str) == task) & (runs["method"] == GRID)] if runs is not None else None
        oracle_seconds = held_out.get(task, {}).get("oracle_seconds")
        if is_missing(oracle_seconds) and (grid is None or not len(grid)):
            continue
        rows.append([f"the oracle's grid on {task}", fmt_int(len(grid)) if grid is not None else MISSING,
                     fmt_seconds(oracle_seconds), str((summary or {}).get("device") or MISSING)])  # fmt: skip
    caption = (
        "what the rates cost before the comparison: the controller is meta-trained once and reused on every held-out "
        "task; the oracle (and every method that starts from its rate) pays for a whole grid on each task"
    )
    return {"training_notes": notes, "training_figure": figure, "training_lines": lines,
            "cost_table": Table.build(columns, rows, caption=caption) if rows else None}  # fmt: skip


def _training_figure(history: list[dict], best: Any) -> Optional[str]:
    def having(key: str) -> list[dict]:
        return [r for r in history if not is_missing(r.get("iteration")) and not is_missing(r.get(key))]

    population, validated = having("population_score"), having("validation_score")
    if not population and not validated:
        return None
    curves = [
        {"label": "population", "color": "C0",
         "x": [r["iteration"] for r in population], "y": [r["population_score"] for r in population],
         "style": {"marker": "none", "linewidth": 1}},
        {"label": "meta-validation", "color": "C1", "x": [r["iteration"] for r in validated],
         "y": [r["validation_score"] for r in validated]},
    ]  # fmt: skip
    kept = [r for r in validated if not is_missing(best) and r["iteration"] == best]
    if kept:
        curves.append({"label": "kept", "color": "C1", "x": [best], "y": [kept[0]["validation_score"]],
                       "style": {"marker": "*", "markersize": 12, "linestyle": "none"}})  # fmt: skip
    return figures.lines_figure(curves, "iteration", "score (lower is better)")


SECTION = SECTIONS.register(Section("lr_control", "Meta-learned learning-rate controller", build))
