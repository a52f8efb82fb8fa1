"""Datasets: the source registry, download to the canonical columns of each task type, reading back.

This package imports nothing heavy (config validation uses ``DATASETS``, ``check_source`` and
``source_task_type``); download and reading back live in ``metahpo.data.prepare``, which loads
``datasets``: import it where it is needed.
"""

from __future__ import annotations

from metahpo.data.sources import (
    DATASETS,
    TASK_TYPES,
    BundledSource,
    HubSource,
    check_source,
    resolve_source,
    source_task_type,
)

__all__ = ["DATASETS", "TASK_TYPES", "BundledSource", "HubSource", "check_source", "resolve_source", "source_task_type"]
