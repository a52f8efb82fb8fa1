"""The sweeps section: per task, trial counts by state, the top trials, failures and figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metahpo.report import figures
from metahpo.report.common import metric_of
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import MISSING, Table, fmt_metric, fmt_number, fmt_scores, fmt_seconds, is_missing

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


STATES = ("ok", "diverged", "oom", "failed")
TOP_TRIALS = 5
CURVE_TRIALS = 3  # learning curves of the best few trials, plus the median trial
FAILURES_SHOWN = 10
MESSAGE_CHARS = 300


def build(inputs: ReportInputs) -> dict:
    params, results = inputs.params, inputs.results
    stage_note = results.missing_stage("sweep")
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
    metric = metric_of(frame)
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


SECTION = SECTIONS.register(Section("sweeps", "Sweeps", build))
