"""A small bounded cache keyed by object identity, for models that depend on the prior tasks alone.

In a leave-one-task-out benchmark the same prior tasks and the same target pool come back for every
strategy and seed. What is fitted on them (a prior task's GP, the meta-model's scores of a pool, a
prior GP's predictions over a pool) is the same each time, so it is computed once. The key is the
identity of the objects it was computed from (held by weak references, so a recycled ``id`` never
matches) plus a hashable extra key for settings; the cache assumes those objects are not modified in
place (TaskData arrays never are). Cached arrays (alone or in a tuple) are made read-only, since
every caller shares them. functools.lru_cache cannot do this: it hashes by value and keeps
its arguments alive.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Hashable, TypeVar

import numpy as np

T = TypeVar("T")


class IdentityCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[tuple, tuple[list[weakref.ref], Any]] = {}

    def get(self, objects: tuple, extra: Hashable, compute: Callable[[], T]) -> T:
        key = (tuple(id(o) for o in objects), extra)
        entry = self._entries.get(key)
        if entry is not None and all(ref() is o for ref, o in zip(entry[0], objects)):
            return entry[1]
        value = compute()
        for array in value if isinstance(value, tuple) else (value,):
            if isinstance(array, np.ndarray):
                array.flags.writeable = False
        if key not in self._entries and len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))  # the oldest entry
        self._entries[key] = ([weakref.ref(o) for o in objects], value)
        return value
