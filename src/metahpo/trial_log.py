"""The progress log of a resumable stage: one finished trial per JSON line beside its output.

A stage appends each finished trial (fsync'd) before starting the next, so an interrupted run
redoes only the trials it had not finished; the output itself is written atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from metahpo.errors import MetahpoError
from metahpo.io import write_text


def shape_key(shape: Any, length: int = 16) -> str:
    """The key of a logged entry or checkpoint: a hash of everything that shapes it (JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:length]


def partial_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    stem = out_path.name[: -len(".parquet")] if out_path.name.endswith(".parquet") else out_path.name
    return out_path.with_name(f"{stem}.partial.jsonl")


def read_partial(path: Path) -> list[dict[str, Any]]:
    """Finished trials recorded by an earlier, interrupted run; a torn last line is dropped."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.split("\n") if line.strip()]
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise MetahpoError(f"{path}: line {number} is not JSON; delete the file to restart the sweep") from None
    if len(rows) < len(lines) or not text.endswith("\n"):
        # rewrite without the torn line so the next append starts on a line of its own
        write_text(path, "".join(line + "\n" for line in lines[: len(rows)]))
    return rows


def append_partial(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
