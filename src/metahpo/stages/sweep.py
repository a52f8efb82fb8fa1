"""Stage sweep: grid + random search of one task (dataset x family), one Parquet table, resumable.

Every finished trial is appended to ``<task>.partial.jsonl`` (``metahpo.trial_log``) before the next
starts, so an interrupted sweep reruns only the trials it had not finished. The Parquet is written
atomically.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from metahpo.errors import MetahpoError
from metahpo.io import write_parquet
from metahpo.search_space import planned_trials
from metahpo.stages.task_data import task_data
from metahpo.trial_log import append_partial, partial_path, read_partial
from metahpo.training import resolve_device, train_model


def sweep_trials(task: str, params) -> list[dict[str, Any]]:
    """The task's sweep trials in run order, from its family's space and the sweep section."""
    space = params.families[params.tasks[task].family].space
    return planned_trials(task, space, params.sweep.grid, params.sweep.random_trials, params.seed)


def trial_row(task: str, dataset: str, family: str, trial: dict[str, Any], result) -> dict[str, Any]:
    """One sweep-table row, in the column order of docs/ARCHITECTURE.md."""
    config = trial["config"]
    return {
        "task": task,
        "dataset": dataset,
        "family": family,
        "trial_id": trial["trial_id"],
        "search": trial["search"],
        "seed": trial["seed"],
        **{f"hp.{name}": value for name, value in config.items()},
        "config": json.dumps(config),
        **result.metrics(),  # state, message, epochs_run, curve_*, metric, val_metric, test_*, seconds, device
        "test_metrics": json.dumps(result.test_metrics, sort_keys=True),  # a JSON object: Parquet-stable
    }


def _matches(row: dict[str, Any], trial: dict[str, Any]) -> bool:
    # a partial row from a sweep with other params (another space or seed) is not reused
    return row.get("seed") == trial["seed"] and row.get("config") == json.dumps(trial["config"])


def run_sweep(
    task: str,
    params,
    data_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    progress: bool = True,
) -> pd.DataFrame:
    """Run (or finish) the sweep of ``task`` on the prepared dataset in ``data_dir``; write ``out_path``."""
    spec = params.tasks[task]
    device = resolve_device(params.device)
    trials = sweep_trials(task, params)
    if not trials:
        raise MetahpoError("sweep: grid is false and random_trials is 0, so there is no trial to run")
    progress_file = partial_path(out_path)
    progress_file.parent.mkdir(parents=True, exist_ok=True)
    planned = {t["trial_id"]: t for t in trials}
    done = {
        row["trial_id"]: row
        for row in read_partial(progress_file)
        if row.get("trial_id") in planned and _matches(row, planned[row["trial_id"]])
    }

    todo = [t for t in trials if t["trial_id"] not in done]
    if done:
        print(f"{task}: resumed {len(done)} finished trials from {progress_file}; {len(todo)} left to train", flush=True)
    if todo:
        family, options, prepared = task_data(params, task, data_dir)  # once per task, shared by every trial
        bar = tqdm(total=len(trials), initial=len(done), desc=task, unit="trial", disable=not progress)
        best = _best_val_metric(done.values())
        try:
            for trial in todo:
                result = train_model(
                    family,
                    prepared,
                    trial["config"],
                    epochs=params.sweep.epochs,
                    seed=trial["seed"],
                    device=device,
                    precision=params.precision,
                    options=options,
                )
                row = trial_row(task, spec.dataset, spec.family, trial, result)
                append_partial(progress_file, row)
                done[trial["trial_id"]] = row
                best = _best_val_metric([row], best)
                bar.set_postfix_str(f"{trial['trial_id']} {row['state']}, best val {best:.4f}")
                bar.update()
        finally:
            bar.close()

    table = pd.DataFrame([done[t["trial_id"]] for t in trials])
    write_parquet(out_path, table)
    progress_file.unlink(missing_ok=True)
    return table


def _best_val_metric(rows, best: float = float("nan")) -> float:
    for row in rows:
        value = row["val_metric"]
        if row["state"] == "ok" and not math.isnan(value) and (math.isnan(best) or value > best):
            best = value
    return best


def run(params, job) -> None:
    (data_dir,) = job.deps
    (out_path,) = job.outs
    run_sweep(job.key, params, data_dir, out_path)
