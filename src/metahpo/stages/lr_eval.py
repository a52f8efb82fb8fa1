"""Stage lr_eval: every learning-rate method on every held-out task, seed by seed, the same model,
batch and step budget -> results/lr_eval/ (runs, traces, summary).

Each finished run is appended to the progress log beside the output, keyed by everything that shapes
it (the code of the stage's import closure, task config, optimizer and rate, seed, budget; the
controller's bytes for meta), and the log is
kept: an interrupted run resumes, a rerun trains only what changed, and the grid's run at the base
rate is the fixed baseline's run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from metahpo.codedeps import fingerprint
from metahpo.io import read_json, write_json, write_parquet
from metahpo.lrcontrol.controller import WEIGHTS_FILE, LRController
from metahpo.lrcontrol.evaluate import (
    RUN_COLUMNS, TRACE_COLUMNS, final_gaps, method_table, oracle_lr, policy_for, step_ratios,
    threshold_table, train_run,
)  # fmt: skip
from metahpo.lrcontrol.methods import METHODS, MethodInputs
from metahpo.stages.lr_problem import lr_task
from metahpo.training import describe_device, resolve_device
from metahpo.trial_log import append_partial, partial_path, read_partial, shape_key

REFERENCE = "meta"
TARGETS = {"schedulefree": 0.8, "cosine": 1.0}  # meta's steps to threshold at most this x the baseline's
GAP_TARGET = 0.3  # points of test accuracy below the best baseline at most


def run(params, job) -> None:
    (data_root, controller_dir, recommendations_path), (runs_path, traces_path, summary_path) = job.deps, job.outs
    control = params.lr_control
    if control is None:
        write_parquet(runs_path, pd.DataFrame(columns=RUN_COLUMNS))
        write_parquet(traces_path, pd.DataFrame(columns=TRACE_COLUMNS))
        write_json(summary_path, {"enabled": False})
        print("lr_control: null in the params: no learning-rate methods to compare")
        return
    controller, controller_hash = None, None
    if REFERENCE in control.methods:
        controller = LRController.load(controller_dir)
        controller_hash = hashlib.sha256((Path(controller_dir) / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]
    recommendations = read_json(recommendations_path) if "recommended" in control.methods else {}
    device = resolve_device(params.device)
    seeds = [params.seed + i for i in range(control.seeds)]
    code = fingerprint(__name__)  # an edited method or loop never reuses an old run
    log = partial_path(runs_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = {row["key"]: row for row in read_partial(log)}
    total = len(control.eval_tasks) * len(seeds) * (len(control.oracle_grid) + len(control.methods))
    bar = tqdm(total=total, desc="lr_eval", unit="run")
    rows, tasks_info = [], []

    def one(task, method, seed, inputs, lr=None, identity=None):
        shape = [code, task.name, task.config, params.tasks[task.name].model_dump(mode="json"), seed, control.steps,
                 control.trace_every, identity or [method, inputs.base_lr, inputs.oracle_lr, inputs.recommended_lr]]
        key = shape_key(shape)
        if key not in done:
            row, trace = train_run(task, policy_for(method, inputs, lr), seed, control.steps, device)
            done[key] = {**row, "key": key, "trace": trace}
            append_partial(log, done[key])
            bar.set_postfix_str(f"{task.name} {method} seed {seed} {row['state']}")
        bar.update()
        entry = {k: v for k, v in done[key].items() if k != "trace"}
        rows.append({**entry, "task": task.name, "method": method, "seed": seed})
        return done[key]["trace"]

    traces = []
    try:
        for name in control.eval_tasks:
            task = lr_task(params, name, data_root)
            grid_inputs = MethodInputs(base_lr=control.base_lr, validate_every=control.trace_every)
            for lr in control.oracle_grid:
                for seed in seeds:
                    one(task, "grid", seed, grid_inputs, lr, identity=["constant", lr])
            grid = pd.DataFrame([r for r in rows if r["task"] == name and r["method"] == "grid"])
            recommended = recommendations.get(name, {}).get("config", {}).get("lr")
            inputs = MethodInputs(control.base_lr, oracle_lr(grid), recommended, controller, control.trace_every)
            for method in control.methods:
                constant = {"fixed": inputs.base_lr, "oracle": inputs.oracle_lr, "recommended": inputs.recommended_lr}
                needs = METHODS.get(method).needs
                identity = (["constant", constant[method]] if method in constant
                            else [method, getattr(inputs, needs) if needs else None])  # fmt: skip
                if method == REFERENCE:
                    identity.append(controller_hash)
                for seed in seeds:
                    trace = one(task, method, seed, inputs, identity=identity)
                    traces.extend({**point, "task": name, "method": method, "seed": seed} for point in trace)
            tasks_info.append(_task_info(params, name, inputs, grid))
    finally:
        bar.close()
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    trace_frame = pd.DataFrame(traces, columns=TRACE_COLUMNS)
    thresholds = {}
    for info in tasks_info:
        oracle_runs = runs[(runs["task"] == info["task"]) & (runs["method"] == "grid") & (runs["lr_start"] == info["oracle_lr"])]
        info["threshold_value"] = control.threshold * float(oracle_runs["final_val_metric"].mean())
        thresholds[info["task"]] = info["threshold_value"]
    table = threshold_table(runs[runs["method"] != "grid"], trace_frame, thresholds)
    summary_rows = method_table(table, control.methods)
    ratios = step_ratios(table, REFERENCE, [m for m in control.methods if m != REFERENCE])
    gaps = final_gaps(summary_rows, REFERENCE)
    write_parquet(runs_path, runs)
    write_parquet(traces_path, trace_frame)
    write_json(summary_path, {
        "enabled": True, "methods": control.methods, "reference": REFERENCE,
        "descriptions": {m: METHODS.get(m).description for m in control.methods},
        "seeds": control.seeds, "steps": control.steps, "batch_size": control.batch_size,
        "trace_every": control.trace_every, "threshold": control.threshold, "tasks": tasks_info,
        "meta_train_tasks": control.meta_train_tasks, "table": summary_rows, "ratios": ratios, "gaps": gaps,
        "targets": _targets(ratios, gaps), "device": describe_device(device),
        "meta_training": _meta_cost(controller_dir),
    })  # fmt: skip
    for row in ratios:
        if row["task"] == "all":
            print(f"lr_eval: meta / {row['baseline']:>12} steps to threshold {row['ratio']:.2f}x "
                  f"[{row['low'] or float('nan'):.2f}, {row['high'] or float('nan'):.2f}]")


def _task_info(params, task: str, inputs: MethodInputs, grid: pd.DataFrame) -> dict:
    unseen_dataset, unseen_family = params.unseen_in_meta_training(task, params.lr_control.meta_train_tasks)
    return {
        "task": task, "dataset": params.task_dataset(task), "family": params.registered_family(params.tasks[task].family),
        "unseen_dataset": unseen_dataset, "unseen_family": unseen_family,
        "oracle_lr": inputs.oracle_lr, "recommended_lr": inputs.recommended_lr,
        "oracle_seconds": float(grid["seconds"].sum()),
    }  # fmt: skip


def _targets(ratios: list[dict], gaps: list[dict]) -> list[dict]:
    """The issue's targets, pooled over the held-out tasks: a step ratio is met at most its target with
    the whole interval below 1; the gap at most GAP_TARGET points on every task."""
    targets = []
    for baseline, target in TARGETS.items():
        pooled = next((r for r in ratios if r["task"] == "all" and r["baseline"] == baseline), {})
        met = None if pooled.get("high") is None else bool(pooled["ratio"] <= target and pooled["high"] < 1)
        targets.append({"name": f"steps vs {baseline}", "value": pooled.get("ratio"), "low": pooled.get("low"),
                        "high": pooled.get("high"), "target": target, "met": met})  # fmt: skip
    worst = max((g["gap_points"] for g in gaps), default=None)
    targets.append({"name": "final accuracy gap (points)", "value": worst, "low": None, "high": None,
                    "target": GAP_TARGET, "met": None if worst is None else bool(worst <= GAP_TARGET)})  # fmt: skip
    return targets


def _meta_cost(controller_dir) -> dict:
    manifest = Path(controller_dir) / "meta_training.json"
    meta = read_json(manifest) if manifest.is_file() else {}
    return {"seconds": meta.get("seconds"), "runs": meta.get("runs")}
