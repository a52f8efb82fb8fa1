"""The convergence section: each task's recommended config trained with the full budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from metahpo.report.common import load_each
from metahpo.report.inputs import ResultsTree
from metahpo.report.section import SECTIONS, ReportInputs, Section
from metahpo.report.tables import (
    MISSING,
    Table,
    config_table,
    fmt_int,
    fmt_metric,
    fmt_number,
    fmt_percent,
    fmt_scores,
    fmt_seconds,
    is_missing,
)

if TYPE_CHECKING:  # annotations only: the library never imports the params module
    from metahpo.config import Params


NOT_AVAILABLE = "not available"


def build(inputs: ReportInputs) -> dict:
    params, results = inputs.params, inputs.results
    recommendations, rec_note = results.recommendations()
    recommendations = recommendations or {}
    grid_seconds = _grid_seconds(params, results)
    trained, notes = load_each(
        list(params.tasks), results.train_metrics, results.missing_stage("train_recommended")
    )
    columns = [
        ("task", False), ("method", False), ("state", False), ("metric", False),
        ("test", True), ("all test metrics", False), ("best val", True), ("threshold", True),
        ("epochs to threshold / run", True), ("seconds to threshold", True), ("total seconds", True),
        ("grid seconds", True), ("of grid seconds", True),
    ]  # fmt: skip
    rows, configs = [], []  # configs: (task, method), the config trained
    for task in params.tasks:
        metrics = trained.get(task)
        if metrics is None:
            recommended = recommendations.get(task, {})
            known = [task, str(recommended.get("method", MISSING))]
            configs.append((known + [_why(recommended)], recommended.get("config")))
            grid_columns = [fmt_seconds(grid_seconds.get(task)), MISSING]  # grid seconds, of grid seconds
            unknown = [MISSING] * (len(columns) - len(known) - 1 - len(grid_columns))
            rows.append(known + [NOT_AVAILABLE] + unknown + grid_columns)
            continue
        seconds = metrics.get("seconds")
        grid = grid_seconds.get(task)
        configs.append(([task, str(metrics.get("method", MISSING)), _why(recommendations.get(task, {}))], metrics.get("config")))
        rows.append(
            [
                task,
                str(metrics.get("method", MISSING)),
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
    configs_table = config_table([("task", False), ("method", False), ("why this config", False)], configs,
                                 caption="the config each task trained")  # fmt: skip
    return {"notes": notes, "table": Table.build(columns, rows), "configs": configs_table}


def _why(recommended: dict) -> str:
    """The safe rule's reason when it trained the family's default config instead of the surrogate's pick."""
    if not recommended.get("fallback"):
        return MISSING
    return f"the family's {recommended['fallback']} config: {recommended.get('reason') or 'no reason recorded'}"


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


SECTION = SECTIONS.register(Section("convergence", "Recommended configs trained to convergence", build))
