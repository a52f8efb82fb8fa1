"""Stage benchmark: replay HPO strategies leave-one-task-out on the pipeline's own sweeps.

Per ``families`` entry with two or more tasks (the entries that tasks name, in task order): its
sweep tables are exported to the meta-dataset schema (docs/META_DATASET.md) under ``export/``,
every strategy of ``benchmark.strategies`` is replayed on every held-out task with seeds
0..``benchmark.seeds``-1 (``metahpo.hpo.replay``), and the regret rows of all families go to one
table. Beside each family's summary, ``resolution`` says per task how fine its objective is against
the regret targets (``metrics.objective_resolution``; validation sizes from the meta-features).
A family with a single task has no other task to transfer from, so it is skipped with a note.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from metahpo.hpo.metadataset import MF_PREFIX, from_frame
from metahpo.hpo.regret_summary import objective_resolution, summarize
from metahpo.hpo.replay import replay_strategies
from metahpo.hpo.sweep_tables import family_frames, family_log_scale
from metahpo.stages.shared import family_datasets
from metahpo.io import atomic_dir, write_json, write_parquet

REGRET_COLUMNS = ("family", "strategy", "task", "seed", "trial", "regret", "cost", "index", "epochs")
EXPORT = "export"  # folder of metadataset-<family>.parquet and metafeatures-<family>.parquet


def run_benchmark(
    params,
    sweep_dir: str | Path,
    metafeatures_dir: str | Path,
    out_dir: str | Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``regret.parquet``, ``summary.json`` and ``export/`` under ``out_dir``; return the summary."""
    out_dir = Path(out_dir)
    strategies = params.benchmark.strategy_names()
    seeds = range(params.benchmark.seeds)
    regrets: list[pd.DataFrame] = []
    families: dict[str, dict[str, Any]] = {}
    with atomic_dir(out_dir / EXPORT) as export_dir:
        # in task order, from params.tasks; params.families gives only the encoding's declared log flags
        for family in dict.fromkeys(spec.family for spec in params.tasks.values()):
            tasks = params.tasks_of_family(family)
            if len(tasks) < 2:
                families[family] = {
                    "tasks": tasks,
                    "note": f"skipped: {len(tasks)} task(s); leave-one-task-out needs at least 2",
                }
                continue
            table, mf_table = family_frames(family_datasets(params, family), sweep_dir, metafeatures_dir)
            write_parquet(export_dir / f"metadataset-{family}.parquet", table)
            if mf_table is not None:
                write_parquet(export_dir / f"metafeatures-{family}.parquet", mf_table)
            data = from_frame(table, "max", mf_table, family_log_scale(params.families[family].space))
            if progress:
                print(f"benchmark {family}: {len(tasks)} tasks, {len(strategies)} strategies, {len(seeds)} seeds")
            regret = replay_strategies(data, strategies, params.benchmark.trials, seeds, progress=progress)
            regret.insert(0, "family", family)
            regrets.append(regret)
            families[family] = {
                "tasks": tasks,
                "meta_features": mf_table is not None,
                "summary": _records(summarize(regret)),
                "resolution": _records(objective_resolution(data, _validation_sizes(mf_table))),
            }

    regret = pd.concat(regrets, ignore_index=True) if regrets else _empty_regret()
    write_parquet(out_dir / "regret.parquet", regret[list(REGRET_COLUMNS)])
    summary = {
        "strategies": strategies,
        "trials": params.benchmark.trials,
        "seeds": params.benchmark.seeds,
        "families": families,
    }
    write_json(out_dir / "summary.json", summary)
    return summary


def _validation_sizes(mf_table: pd.DataFrame | None) -> dict[str, float] | None:
    """task -> validation examples, from the exported meta-features (``mf.n_validation``) when there."""
    column = f"{MF_PREFIX}n_validation"
    if mf_table is None or column not in mf_table.columns:
        return None
    return dict(zip(mf_table["task"], pd.to_numeric(mf_table[column], errors="coerce")))


def _empty_regret() -> pd.DataFrame:
    types = {"family": "object", "strategy": "object", "task": "object", "seed": "int64", "trial": "int64",
             "regret": "float64", "cost": "float64", "index": "int64", "epochs": "int64"}  # fmt: skip
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in types.items()})


def _records(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Summary rows as JSON-safe records: NaN (no interval) and inf (target never reached) become null."""
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in summary.to_dict("records")
    ]


def run(params, job) -> None:
    sweep_dir, metafeatures_dir = job.deps
    run_benchmark(params, sweep_dir, metafeatures_dir, Path(job.outs[0]).parent, progress=sys.stderr.isatty())
