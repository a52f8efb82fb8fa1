"""Datasets: the source registry, download to the canonical columns of each task type, reading back.

``DATASETS``, ``check_source`` and ``source_task_type`` import nothing heavy (config validation uses
them); the rest loads ``datasets`` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from metahpo.data.sources import (
    DATASETS,
    TASK_TYPES,
    BundledSource,
    HubSource,
    check_source,
    resolve_source,
    source_task_type,
)

_LAZY = {
    "download_dataset": "metahpo.data.prepare",
    "load_prepared": "metahpo.data.prepare",
    "input_array": "metahpo.data.prepare",
    "label_array": "metahpo.data.prepare",
    "mirror_root": "metahpo.data.prepare",
    "detect_columns": "metahpo.data.columns",
    "ColumnPlan": "metahpo.data.columns",
}

__all__ = [
    "DATASETS", "TASK_TYPES", "BundledSource", "HubSource", "check_source", "resolve_source", "source_task_type", *_LAZY,
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metahpo.data' has no attribute {name!r}")
