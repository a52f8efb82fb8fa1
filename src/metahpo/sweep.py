"""Grid + random search of one task (dataset x family): one Parquet table, resumable per trial.

Every finished trial is appended to ``<task>.partial.jsonl`` before the next starts, so an
interrupted sweep reruns only the trials it had not finished. The Parquet is written atomically.
"""

from __future__ import annotations

import json
import math
import os
import random
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from metahpo.config import HyperparameterSpace, Params
from metahpo.errors import MetahpoError
from metahpo.hpo.space import grid_configs  # the one grid enumeration (fit_meta and tune use it too)
from metahpo.io import write_parquet, write_text
from metahpo.training import prepare_task, resolve_device, train_model

Space = dict[str, HyperparameterSpace]


def _draw(rng: random.Random, spec: HyperparameterSpace) -> int | float:
    if spec.sample == "choice":
        return rng.choice(spec.values)
    low, high = min(spec.values), max(spec.values)
    if spec.sample == "uniform":
        value = rng.uniform(low, high)
    else:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        value = min(max(value, low), high)  # exp(log(x)) can leave [low, high] by an ulp
    if all(isinstance(v, int) for v in spec.values):
        return min(max(round(value), low), high)
    return value


def random_configs(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random configs; the same seed draws the same configs."""
    rng = random.Random(seed)
    return [{name: _draw(rng, spec) for name, spec in space.items()} for _ in range(n)]


def stable_seed(*parts: Any) -> int:
    """A seed from its parts that is the same in every process (Python's hash() is salted)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode("utf-8")) & 0x7FFFFFFF


def planned_trials(task: str, params: Params) -> list[dict[str, Any]]:
    """The sweep's trials in run order: trial_id, search, seed and config each."""
    space = params.families[params.tasks[task].family].space
    plan = []
    if params.sweep.grid:
        plan += [("grid", i, c) for i, c in enumerate(grid_configs(space))]
    randoms = random_configs(space, params.sweep.random_trials, stable_seed(params.seed, task, "random"))
    plan += [("random", i, c) for i, c in enumerate(randoms)]
    trials = []
    for search, index, config in plan:
        trial_id = f"{search}-{index:04d}"
        trials.append(
            {"trial_id": trial_id, "search": search, "seed": stable_seed(params.seed, task, trial_id), "config": config}
        )
    return trials


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
    params: Params,
    data_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    progress: bool = True,
) -> pd.DataFrame:
    """Run (or finish) the sweep of ``task`` on the prepared dataset in ``data_dir``; write ``out_path``."""
    spec = params.tasks[task]
    device = resolve_device(params.device)
    trials = planned_trials(task, params)
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
    if todo:
        family, options, prepared = prepare_task(params, task, data_dir)  # once per task, shared by every trial
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
