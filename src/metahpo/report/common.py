"""Analysis helpers that several report sections share: display order, loading, metric names.

What only one section needs stays in that section's module (``metahpo.report.sections.<id>``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import pandas as pd

from metahpo.report.tables import MISSING


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
