"""Datasets: the source registry, download to canonical ``input`` / ``label`` columns, reading back.

``DATASETS`` and ``check_source`` import nothing heavy (config validation uses them); the rest
loads ``datasets`` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from metahpo.data.sources import DATASETS, BundledSource, HubSource, check_source, resolve_source

_LAZY = {
    "download_dataset": "metahpo.data.prepare",
    "load_prepared": "metahpo.data.prepare",
    "input_array": "metahpo.data.prepare",
    "label_array": "metahpo.data.prepare",
    "mirror_root": "metahpo.data.prepare",
    "detect_columns": "metahpo.data.columns",
    "ColumnPlan": "metahpo.data.columns",
}

__all__ = ["DATASETS", "BundledSource", "HubSource", "check_source", "resolve_source", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metahpo.data' has no attribute {name!r}")
