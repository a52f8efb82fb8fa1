"""The pipeline's stages, one module each (``metahpo.stages.<name>``), run by ``main``.

A stage module defines ``run(params, job)``: ``params`` is the validated ``metahpo.config.Params``,
``job`` the ``metahpo.pipeline.Job`` with the stage's paths in the order of its row in the stage
table. It reads ``job.deps``, writes ``job.outs`` and passes each library function only the values
or params section it needs. Paths are never written in a stage: they come from the table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from metahpo.errors import MetahpoError


def add_arguments(parser: argparse.ArgumentParser, stage) -> None:
    """A stage's command line: the entry it runs for (per-entry stages), and the params file."""
    if stage.over:
        parser.add_argument(stage.wildcard, help=f"a name under {stage.over} in the params file")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


def run_stage(name: str, params_file: str, key: Optional[str] = None) -> None:
    """Validate the params, resolve the job's paths from the stage table, run the stage module."""
    from metahpo import pipeline
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
    job = pipeline.job(stage, pipeline.read_raw_params(params_file), key, params_file)
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
