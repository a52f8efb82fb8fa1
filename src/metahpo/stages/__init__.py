"""The pipeline's stages, one module each (``metahpo.stages.<name>``), run by ``main``.

A stage module defines ``run(params, job)``: ``params`` is the validated ``metahpo.config.Params``,
``job`` the ``metahpo.pipeline.Job`` with the stage's paths in the order of its row in the stage
table. It reads ``job.deps``, writes ``job.outs`` and passes each library function only the values
or params section it needs. Paths are never written in a stage: they come from the table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import socket
import sys
from typing import Iterator, Optional, Sequence

from metahpo.errors import MetahpoError


def add_arguments(parser: argparse.ArgumentParser, stage) -> None:
    """A stage's command line: the entry it runs for (per-entry stages), and the params file."""
    if stage.over:
        parser.add_argument(stage.wildcard, help=f"a name under {stage.over} in the params file")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


LOCKS = os.path.join("results", ".locks")  # one lock file per job address; not an output of any stage


@contextlib.contextmanager
def job_lock(address: str) -> Iterator[None]:
    """Refuse to run a job that another run (Snakemake, DVC or a script, any mix) is running now.

    Two runs of one job would append to the same resumable log and replace each other's outputs.
    The lock is an flock, so the kernel releases it when its process dies: a kill leaves none behind.
    """
    import fcntl

    os.makedirs(LOCKS, exist_ok=True)
    path = os.path.join(LOCKS, f"{address}.lock")
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise MetahpoError(
                f"{address} is already running in this folder ({holder}); wait for that run to finish or stop "
                "it, then rerun: two runs of one job would overwrite each other's outputs"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_stage(name: str, params_file: str, key: Optional[str] = None) -> None:
    """Validate the params, resolve the job's paths from the stage table, run the stage module."""
    from metahpo import pipeline
    from metahpo.artifacts import check_inputs
    from metahpo.config import load_params

    stage = pipeline.STAGE_BY_NAME[name]
    params = load_params(params_file)
    if stage.over:
        names = getattr(params, stage.over)
        if key not in names:
            raise MetahpoError(
                f"unknown {stage.wildcard} {key!r}; valid names under {stage.over} in {params_file}: "
                + (", ".join(sorted(names)) or "(none)")
            )
    raw = pipeline.read_raw_params(params_file)
    job = pipeline.job(stage, raw, key, params_file)
    check_inputs(pipeline.data_inputs(stage, raw, key), raw)  # a truncated input fails here, before any work
    with job_lock(job.address):
        importlib.import_module(stage.module).run(params, job)
    if os.environ.get("DVC_STAGE"):  # dvc repro ran this stage: Snakemake's records of it are stale
        from metahpo.toolsync import forget_snakemake_records

        forget_snakemake_records(job.outs)


def main(name: str, argv: Optional[Sequence[str]] = None) -> int:
    """scripts/<name>.py: parse the stage's arguments and run it; a user-fixable problem exits 2."""
    from metahpo import pipeline

    stage = pipeline.STAGE_BY_NAME[name]
    parser = argparse.ArgumentParser(prog=stage.script, description=f"Stage {name}: {stage.help}")
    add_arguments(parser, stage)
    args = parser.parse_args(argv)
    try:
        run_stage(name, args.params, getattr(args, stage.wildcard) if stage.over else None)
    except MetahpoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
