"""Number formatting and the one table shape every section renders.

Cells are formatted here, in Python, so every table in the report prints numbers the same way and
the template needs a single table macro.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

MISSING = "—"  # a value that does not apply or was not measured (NaN, None)


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def as_float(value: Any) -> float:
    """A cell's number for plotting: NaN where it is missing (None, NaN)."""
    return math.nan if is_missing(value) else float(value)


def fmt_fixed(value: Any, digits: int) -> str:
    return MISSING if is_missing(value) else f"{float(value):.{digits}f}"


def fmt_metric(value: Any) -> str:
    """Accuracy, F1, exact match, val metric, regret: fractions, 3 decimals."""
    return fmt_fixed(value, 3)


def fmt_seconds(value: Any) -> str:
    return fmt_fixed(value, 1)


def fmt_percent(value: Any) -> str:
    return MISSING if is_missing(value) else f"{100 * float(value):.1f}%"


def fmt_int(value: Any) -> str:
    return MISSING if is_missing(value) else str(int(value))


def fmt_number(value: Any) -> str:
    """A value of unknown scale (meta-features, hyperparameters): 4 significant digits; text (a
    categorical hyperparameter) as it is."""
    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, str)):
        return str(value)
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e9 else f"{number:.4g}"


def parse_config(config: Any) -> Optional[dict]:
    """A config dict, or its JSON text; None for anything else (missing, or not an object)."""
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            return None
    return config if isinstance(config, dict) else None


def fmt_scores(scores: Any) -> str:
    """A metrics dict (or its JSON text) as compact ``name=value`` text, names in case-blind order.

    Example counts (``total``, ``HasAns_total``) and metrics that do not apply to the split (NaN,
    e.g. ``NoAns_f1`` without unanswerable questions) are left out to keep the cell short.
    """
    if isinstance(scores, str):
        try:
            scores = json.loads(scores)
        except json.JSONDecodeError:
            return scores
    if not isinstance(scores, dict):
        return MISSING
    shown = [
        f"{name}={fmt_metric(value)}"
        for name, value in sorted(scores.items(), key=lambda item: item[0].lower())
        if not is_missing(value) and name.rsplit("_", 1)[-1] != "total"
    ]
    return ", ".join(shown) or MISSING


@dataclass
class Table:
    """Column headers and rows of already formatted strings; ``numeric`` columns align right."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    numeric: frozenset[int] = frozenset()
    caption: str = ""

    @classmethod
    def build(cls, columns: Sequence[tuple[str, bool]], rows: list[list[str]], caption: str = "") -> "Table":
        """``columns``: (header, is_numeric) pairs."""
        return cls(
            columns=[name for name, _ in columns],
            rows=rows,
            numeric=frozenset(i for i, (_, numeric) in enumerate(columns) if numeric),
            caption=caption,
        )


def config_table(lead: Sequence[tuple[str, bool]], rows: Sequence[tuple[list[str], Any]], caption: str = "") -> Table:
    """A table whose last columns are configs' hyperparameters, one column each, so configs compare by eye.

    ``lead``: the first columns, as ``Table.build`` takes them; ``rows``: (lead cells, config: a dict
    or its JSON text). Hyperparameter columns are the sorted union of the configs' names; a config
    without one shows ``MISSING`` there; a column is numeric when every value in it is a number.
    """
    configs = [parse_config(config) or {} for _, config in rows]
    names = sorted({name for config in configs for name in config})
    numeric = {
        name: all(isinstance(c[name], (int, float)) and not isinstance(c[name], bool) for c in configs if name in c)
        for name in names
    }
    body = [cells + [fmt_number(config[name]) if name in config else MISSING for name in names]
            for (cells, _), config in zip(rows, configs)]  # fmt: skip
    return Table.build(list(lead) + [(name, numeric[name]) for name in names], body, caption=caption)
