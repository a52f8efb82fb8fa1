"""Analysis helpers that several report sections share: display order, loading, metric names, intervals.

What only one section needs stays in that section's module (``metahpo.report.sections.<id>``). The
summary section (``metahpo.report.sections.summary``) reads its figures through the functions here
that the capability sections use too, so a headline and the table it comes from cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Optional

import pandas as pd

from metahpo.hpo.regret_summary import median_text, t_half_width
from metahpo.report.tables import MISSING, fmt_fixed, fmt_metric, is_missing


def display_order(names: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """``names``, distinct: those in ``preferred`` in its order, then the others by name."""
    present = set(names)
    preferred = list(preferred)
    return [name for name in preferred if name in present] + sorted(present - set(preferred))


def load_each(
    names: list[str], load: Callable[[str], tuple[Any, Optional[str]]], stage_note: Optional[str]
) -> tuple[dict[str, Any], list[str]]:
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


def metric_of(rows: pd.DataFrame) -> str:
    """The primary metric of one task's rows (sweep, LOTO or tune): every row of a task names the same."""
    return str(rows["metric"].iloc[0]) if len(rows) else MISSING


def stage_object(results, stage: str, read: Callable[[], tuple[Any, Optional[str]]],
                 relative: str) -> tuple[Optional[dict], Optional[str]]:  # fmt: skip
    """A stage's JSON object (a summary, a manifest) through ``read``, or None and why: the stage's note
    when it did not run (``results.missing_stage``), the reader's when the file is missing, a note when
    it is not an object."""
    stage_note = results.missing_stage(stage)
    if stage_note:
        return None, stage_note
    value, note = read()
    if value is not None and not isinstance(value, dict):
        return None, f"not available: {relative} is not an object"
    return value, note


def listed(record: Optional[dict], key: str) -> list[str]:
    """The list ``key`` of a summary or manifest (selectors, methods, tasks, ...) as names; [] if it has none."""
    value = (record or {}).get(key)
    return [str(name) for name in value] if isinstance(value, list) else []


def with_ci(value: Any, half_width: Any, digits: int = 3) -> str:
    """``value ±half_width`` with ``digits`` decimals; the interval left out when it is missing."""
    if is_missing(value):
        return MISSING
    return fmt_fixed(value, digits) + ("" if is_missing(half_width) else f" ±{fmt_fixed(half_width, digits)}")


def summary_rows(summary: Optional[dict], key: str, name: str) -> list[dict]:
    """The summary's list of rows ``key``, those that are objects with a ``name``; the name as text."""
    rows = (summary or {}).get(key)
    if not isinstance(rows, list):
        return []
    return [{**row, name: str(row[name])} for row in rows if isinstance(row, dict) and row.get(name) is not None]


def bracket(low: Any, high: Any) -> str:
    """An interval as ``[low, high]``, 2 decimals (ratios); missing when either end is."""
    if is_missing(low) or is_missing(high):
        return MISSING
    return f"[{float(low):.2f}, {float(high):.2f}]"


def with_bounds(mean: Any, low: Any, high: Any) -> str:
    """A regret as ``mean ±half`` from its interval's ends; the mean alone when an end is missing."""
    if is_missing(low) or is_missing(high):
        return fmt_metric(mean)
    return f"{fmt_metric(mean)} ±{fmt_metric((float(high) - float(low)) / 2)}"


def fmt_median(value: Any, fmt) -> str:
    """A median over runs, half or more of which never reached the target, is infinite (null in JSON)."""
    return "not reached" if is_missing(value) or math.isinf(float(value)) else fmt(value)


def median_cell(record: Mapping[str, Any], column: str, fmt) -> str:
    """``record[column]``, a median over runs (``fmt_median``), with its 95% interval from ``<column>_low`` /
    ``_high`` (``regret_summary.median_interval``): "7 [5, 9]"; "12 [8, ∞)" or "not reached [8, ∞)" when the
    upper bound is a run that never reached the target (inf, or null in JSON: a summary has both ends or
    neither); the median alone when the low end is missing (under 6 runs, or a summary.json written
    before the intervals) or inf (then the median is too)."""
    return median_text(record.get(column), record.get(f"{column}_low"), record.get(f"{column}_high"), fmt,
                       median_fmt=lambda median: fmt_median(median, fmt), open_end="∞)")  # fmt: skip


def loto_means(loto: pd.DataFrame) -> pd.DataFrame:
    """Per (method, k) of fit_meta's leave-one-task-out table: mean regret over the held-out tasks, its
    95% t-interval's half-width over them, and the mean share of the grid's seconds the k runs cost (with
    its half-width)."""
    share = loto["seconds"] / loto["grid_seconds"].where(loto["grid_seconds"] > 0)
    grouped = loto.assign(seconds_share=share).groupby(["method", "k"])
    return pd.DataFrame(
        {
            "regret": grouped["regret"].mean(),
            "regret_half": grouped["regret"].agg(lambda values: t_half_width(values.dropna())),
            "seconds_share": grouped["seconds_share"].mean(),
            "seconds_share_half": grouped["seconds_share"].agg(lambda values: t_half_width(values.dropna())),
            "tasks": grouped["task"].nunique(),
        }
    )


def benchmark_families(summary: Any) -> Optional[dict[str, dict]]:
    """family -> ``{"records", "note", "resolution"}`` from benchmark/summary.json; None if it is not keyed by family.

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


def fewshot_table(summary: Optional[dict]) -> tuple[pd.DataFrame, list[str]]:
    """fewshot/summary.json's comparison table (a row per method and setting), and why it is empty if it is."""
    if summary is None:
        return pd.DataFrame(), []
    rows = summary.get("table")
    if not isinstance(rows, list):
        return pd.DataFrame(), ["not available: fewshot/summary.json has no comparison table"]
    table = pd.DataFrame([row for row in rows if isinstance(row, dict)])
    if not len(table):
        return table, ["not available: fewshot/summary.json's comparison table has no rows"]
    if not {"method", "setting"} <= set(table.columns):
        return pd.DataFrame(), ["not available: fewshot/summary.json's table lacks the method and setting columns"]
    return table, []
