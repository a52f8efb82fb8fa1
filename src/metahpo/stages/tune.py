"""Stage tune: real HPO of one held-out task, a strategy next to its baseline, K trainings each.

The strategy asks from the task's pool: the family's grid configurations in seed order. Its prior
is the other tasks of the same ``families`` entry, from their sweep tables. Prior rows and the
target's grid rows go through one ``metadataset.from_frame`` so both share one encoding; then the
target is held out (``MetaDataset.fold``): objective hidden, meta-features standardised on the prior. Each asked configuration is trained for real (``train_model``; the
data is prepared once for the task) and the strategy is told its val_metric (NaN unless ok).

Every finished trial is appended to ``<task>.partial.jsonl``; a rerun replays the strategy and reuses
a recorded trial wherever the strategy asks for the same configuration again, so an interrupted
stage trains only what it had not finished. The Parquet is written atomically at the end.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from metahpo.hpo.base import STRATEGIES, Query, Strategy
from metahpo.hpo.metadataset import HP_PREFIX, TaskData, from_frame, from_sweeps
from metahpo.hpo.sweep_tables import family_log_scale, read_sweep, task_metafeatures
from metahpo.io import write_parquet
from metahpo.search_space import grid_configs, stable_seed
from metahpo.trial_log import append_partial, partial_path, read_partial
from metahpo.stages.task_data import task_data
from metahpo.training import resolve_device, train_model

TUNE_COLUMNS = (
    "task", "family", "strategy", "trial", "config", "epochs", "state", "val_metric", "best_val_metric",
    "test_metric", "seconds", "cumulative_seconds", "note",
)  # fmt: skip

def target_pool(
    params, task: str, sweep_dir: str | Path, metafeatures_dir: str | Path
) -> tuple[TaskData, list[TaskData], list[dict[str, Any]]]:
    """(the task's hidden pool, the prior tasks, the pool's configurations in row order).

    The prior sweeps and the target's grid rows form one meta-dataset (one encoding, the family's
    declared log flags); its ``fold`` standardises the target's meta-features with the prior tasks'
    scaler, as fit_meta and the benchmark do for a held-out task.
    """
    family = params.tasks[task].family
    configs = grid_configs(params.families[family].space)
    others = [t for t in params.tasks_of_family(family) if t != task]
    rows = pd.DataFrame({f"{HP_PREFIX}{name}": [c[name] for c in configs] for name in configs[0]})
    rows.insert(0, "task", task)
    rows["objective"] = np.nan  # hidden: the stage measures it
    rows["curve"] = [[] for _ in configs]
    table, mf_table = rows, None
    if others:
        # the target's meta-features ride along: the fold standardises them with the prior's scaler
        datasets = {t: params.task_dataset(t) for t in [*others, task]}
        prior_table, mf_table = from_sweeps(
            [read_sweep(sweep_dir, t) for t in others], task_metafeatures(datasets, metafeatures_dir)
        )
        table = pd.concat([prior_table, rows], ignore_index=True)
    data = from_frame(table, "max", mf_table, family_log_scale(params.families[family].space))
    target, prior = data.fold(task)
    # the target's full fidelity is its own training budget, not the prior's curve lengths
    target.n_epochs = max(_full_epochs(params, c) for c in configs)
    return target, prior, configs


def _full_epochs(params, config: dict[str, Any]) -> int:
    return int(config.get("epochs", params.sweep.epochs))


def note_for(strategy: type[Strategy], family: str, prior: list[TaskData]) -> str:
    if not strategy.uses_prior or prior:
        return ""
    return f"family {family!r} has no other task: {strategy.name} ran without a prior ({strategy.without_prior})"


def run_tune(
    task: str,
    params,
    data_dir: str | os.PathLike,
    sweep_dir: str | os.PathLike,
    metafeatures_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    progress: bool = True,
) -> pd.DataFrame:
    """Tune ``task`` with ``tune.strategy`` and ``tune.baseline``; write ``out_path`` (one row per trial)."""
    import metahpo.hpo.strategies  # noqa: F401  registers the strategies

    spec = params.tasks[task]
    family, options, prepared = task_data(params, task, data_dir)  # once per task, shared by every trial
    device = resolve_device(params.device)
    target, prior, configs = target_pool(params, task, sweep_dir, metafeatures_dir)

    progress_file = partial_path(out_path)
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    recorded = {(r["strategy"], r["trial"]): r for r in read_partial(progress_file)}

    def train(query: Query, trial_seed: int) -> dict[str, Any]:
        config = configs[query.index]
        epochs = _full_epochs(params, config)
        if query.epochs is not None:  # a partial evaluation asked by a multi-fidelity strategy
            epochs = min(epochs, int(query.epochs))
            config = {**config, "epochs": epochs} if "epochs" in config else config
        result = train_model(
            family, prepared, config, epochs=epochs, seed=trial_seed,
            device=device, precision=params.precision, options=options,
        )  # fmt: skip
        return {"epochs": epochs, "state": result.state, "val_metric": result.val_metric,
                "test_metric": result.test_metric, "seconds": result.seconds}  # fmt: skip

    rows = []
    for name in dict.fromkeys([params.tune.strategy, params.tune.baseline]):
        strategy = STRATEGIES.get(name)
        budget = min(params.tune.trials, len(target) * (target.n_epochs if strategy.multi_fidelity else 1))
        runner = strategy(target, prior, stable_seed(params.seed, task, "tune", name), budget)
        note = note_for(strategy, spec.family, prior)
        best, elapsed = math.nan, 0.0
        for trial in tqdm(range(1, budget + 1), desc=f"{task} {name}", unit="trial", disable=not progress):
            query = runner.ask()
            config = json.dumps(configs[query.index])
            row = recorded.get((name, trial))
            if row is None or row["config"] != config or row["query_epochs"] != query.epochs:
                result = train(query, stable_seed(params.seed, task, "tune", name, trial))
                row = {"task": task, "family": spec.family, "strategy": name, "trial": trial, "config": config,
                       "query_epochs": query.epochs, **result}  # fmt: skip
                append_partial(progress_file, row)
            value = row["val_metric"] if row["state"] == "ok" else math.nan
            runner.tell(query, value)
            elapsed += row["seconds"]
            if query.epochs is None and math.isfinite(value) and (math.isnan(best) or value > best):
                best = value  # full evaluations only: a partial one is not a candidate answer
            rows.append({**row, "best_val_metric": best, "cumulative_seconds": elapsed, "note": note})

    table = pd.DataFrame(rows, columns=list(TUNE_COLUMNS))
    write_parquet(out_path, table)
    progress_file.unlink(missing_ok=True)
    return table


def run(params, job) -> None:
    data_dir, sweep_dir, metafeatures_dir = job.deps
    (out_path,) = job.outs
    run_tune(job.key, params, data_dir, sweep_dir, metafeatures_dir, out_path)
