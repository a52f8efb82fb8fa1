"""Analysis helpers that several report sections share: display order, loading, metric names, intervals.

What only one section needs stays in that section's module (``metahpo.report.sections.<id>``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import pandas as pd

from metahpo.report.tables import MISSING, fmt_fixed, is_missing


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
