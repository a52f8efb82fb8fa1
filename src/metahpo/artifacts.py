"""A job's input artifacts, checked before its stage does any work.

Every artifact is written atomically (``metahpo.io``), so a truncated or corrupted input comes from
outside a run: a copy cut short, a disk failing, a hand edit. The job that reads it fails at once
with the file's name and the stage that rebuilds it; nothing downstream is written from it. The
checks read headers and footers (Parquet footer, Arrow stream metadata, safetensors header, zip
directory), not the data, so they cost milliseconds even for large datasets.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from metahpo.errors import MetahpoError


class ArtifactError(MetahpoError):
    """An input artifact is missing, truncated or corrupted."""


def _parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    pq.read_metadata(path)


def _arrow(path: Path) -> None:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:  # memory-mapped: walks the batch headers, reads no column data
        pa.ipc.open_stream(source).read_all()


def _json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            json.loads(line)


def _safetensors(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:  # parses the header, checks it against the size
        handle.keys()


def _zip(path: Path) -> None:  # skops files are zip archives
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC check")


CHECKS: dict[str, Callable[[Path], None]] = {
    ".parquet": _parquet,
    ".arrow": _arrow,
    ".json": _json,
    ".jsonl": _jsonl,
    ".safetensors": _safetensors,
    ".skops": _zip,
}


def check_file(path: str | os.PathLike) -> Optional[str]:
    """None when ``path`` reads as its type, else what is wrong with it (types without a check pass)."""
    path = Path(path)
    check = CHECKS.get(path.suffix)
    if check is None:
        return None
    if path.stat().st_size == 0:
        return "it is empty"
    try:
        check(path)
    except Exception as err:  # every reader's own error type: pyarrow, json, safetensors, zipfile
        return f"it is truncated or corrupted ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
    return None


def require_readable(path: str | os.PathLike, rebuild: str) -> None:
    """Raise ``ArtifactError`` if ``path`` is missing or unreadable; ``rebuild`` says how to make it again."""
    if not Path(path).is_file():
        raise ArtifactError(f"{path} not found; {rebuild}")
    problem = check_file(path)
    if problem:
        raise ArtifactError(f"{path}: {problem}; {rebuild}")


def _files(path: Path) -> list[Path]:
    """The artifact files at ``path``: itself, or a folder's files (temporaries of an interrupted write skipped)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _within(path: str, out: str) -> bool:
    """``path`` is the output ``out`` or a file in it."""
    return path == out or path.startswith(out.rstrip("/") + "/")


def _producer(path: str, jobs: list) -> Optional[Any]:
    return next((job for job in jobs if any(_within(path, out) for out in job.outs)), None)


def _how_to_rebuild(path: str, producer: Optional[Any]) -> str:
    if producer is None:
        return "restore it"
    rule_target = next((o for o in producer.outs if _within(path, o)), path)
    return (
        f"it is written by stage {producer.address}: delete {rule_target} and rerun it "
        f"(`dvc repro {producer.address}`, or `snakemake --cores 1 --resources gpu=1 {rule_target}`)"
    )


def check_inputs(inputs: list[str], raw_params: Mapping[str, Any]) -> None:
    """Raise ``ArtifactError`` naming every missing or unreadable input file and how to rebuild it."""
    from metahpo import pipeline

    jobs = pipeline.expand_jobs(raw_params)
    problems = []
    for name in inputs:
        path = Path(name)
        if not path.exists():
            problems.append(f"{name}: missing; {_how_to_rebuild(name, _producer(name, jobs))}")
            continue
        for file in _files(path):
            problem = check_file(file)
            if problem:
                problems.append(f"{file}: {problem}; {_how_to_rebuild(str(file), _producer(str(file), jobs))}")
    if problems:
        raise ArtifactError("unreadable inputs, nothing was run:\n  " + "\n  ".join(problems))
