"""Every learning-rate method on the held-out tasks, seed by seed, and the summary the report shows.

One run = one method x task x seed with the same model, batch size and step budget. The oracle is
the best fixed rate of a grid run on the task itself (by mean final validation metric over the
seeds), so it and everything "tuned" that starts from it (cosine, one-cycle, plateau) cost the
whole grid; ``summary["oracle_seconds"]`` says how much. The threshold of a task is
``threshold x`` the oracle's mean final validation metric; steps to it are read off the trace
(validation every ``trace_every`` steps), censored at the budget when a run never gets there.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

from metahpo.hpo.regret_summary import t_half_width
from metahpo.lrcontrol.meta_train import LRTask
from metahpo.lrcontrol.methods import METHODS, Constant, MethodInputs
from metahpo.training import train_model

RUN_COLUMNS = [
    "task", "method", "seed", "state", "message", "lr_start", "lr_end", "steps", "steps_per_epoch",
    "final_val_metric", "auc", "test_accuracy", "test_macro_precision", "test_macro_recall", "test_macro_f1",
    "seconds", "key",
]  # fmt: skip
TRACE_COLUMNS = ["task", "method", "seed", "step", "epoch", "lr", "train_loss", "val_loss", "val_metric", "seconds"]


def train_run(task: LRTask, policy, seed: int, steps: int, device) -> tuple[dict[str, Any], list[dict]]:
    """One run: (its row, without task/method/key, and its trace)."""
    result = train_model(task.family, task.data, task.config, epochs=1, seed=seed, device=device, precision="fp32",
                         options=task.options, policy=policy, max_steps=steps)  # fmt: skip
    trace = result.trace
    metrics = result.test_metrics if result.ok else {}
    val = [p["val_metric"] for p in trace if math.isfinite(p["val_metric"])]
    row = {
        "seed": seed, "state": result.state, "message": result.message,
        "lr_start": trace[0]["lr"] if trace else None, "lr_end": trace[-1]["lr"] if trace else None,
        "steps": steps, "steps_per_epoch": result.steps_per_epoch,
        "final_val_metric": result.val_metric if result.ok else None,
        "auc": float(np.mean(val)) if result.ok and val else None,
        **{f"test_{m}": metrics.get(m) for m in ("accuracy", "macro_precision", "macro_recall", "macro_f1")},
        "seconds": result.seconds,
    }  # fmt: skip
    return row, trace


def policy_for(method: str, inputs: MethodInputs, lr: Optional[float] = None):
    """A method's policy; ``method == "grid"`` is Adam at the fixed rate ``lr`` (the oracle's grid)."""
    if method == "grid":
        return Constant(lr, inputs.validate_every)
    return METHODS.get(method).policy(inputs)


def oracle_lr(grid_runs: pd.DataFrame) -> float:
    """The grid's rate with the best mean final validation metric (diverged runs count as 0); ties: the smaller rate."""
    scores = grid_runs.assign(score=grid_runs["final_val_metric"].fillna(0.0)).groupby("lr_start")["score"].mean()
    best = scores.max()
    return float(min(lr for lr, s in scores.items() if s >= best - 1e-12))


def steps_to_threshold(trace: pd.DataFrame, threshold: float) -> Optional[int]:
    """The first trace step whose validation metric reaches ``threshold``; None when none does."""
    reached = trace[trace["val_metric"] >= threshold]
    return int(reached["step"].min()) if len(reached) else None


def threshold_table(runs: pd.DataFrame, traces: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """``runs`` with steps / epochs / seconds to the task's threshold (NaN when never reached)."""
    rows = []
    for (task, method, seed), trace in traces.groupby(["task", "method", "seed"], sort=False):
        step = steps_to_threshold(trace, thresholds[task])
        seconds = float(trace.loc[trace["step"] == step, "seconds"].iloc[0]) if step is not None else math.nan
        rows.append({"task": task, "method": method, "seed": seed, "steps_to_threshold": step, "seconds_to_threshold": seconds})
    reached = pd.DataFrame(rows, columns=["task", "method", "seed", "steps_to_threshold", "seconds_to_threshold"])
    out = runs.merge(reached, on=["task", "method", "seed"], how="left")
    out["steps_to_threshold"] = out["steps_to_threshold"].astype(float)
    out["epochs_to_threshold"] = out["steps_to_threshold"] / out["steps_per_epoch"]
    out["threshold"] = out["task"].map(thresholds)
    return out


def _mean_ci(values) -> dict[str, Optional[float]]:
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return {"mean": None, "ci": None}
    half = t_half_width(values)
    return {"mean": float(values.mean()), "ci": None if math.isnan(half) else half}


def method_table(table: pd.DataFrame, methods: list[str]) -> list[dict[str, Any]]:
    """Per task x method: means with 95% t-intervals over seeds; steps to threshold over the runs that got there."""
    rows = []
    for task, of_task in table.groupby("task", sort=False):
        for method in methods:
            own = of_task[of_task["method"] == method]
            if own.empty:
                continue
            row: dict[str, Any] = {"task": task, "method": method, "seeds": int(len(own)),
                                   "diverged": int((own["state"] != "ok").sum()),
                                   "reached": int(own["steps_to_threshold"].notna().sum())}  # fmt: skip
            for column in ("steps_to_threshold", "epochs_to_threshold", "seconds_to_threshold", "final_val_metric",
                           "auc", "test_accuracy", "test_macro_precision", "test_macro_recall", "test_macro_f1",
                           "seconds"):  # fmt: skip
                stats = _mean_ci(own[column])
                row[column], row[f"{column}_ci"] = stats["mean"], stats["ci"]
            rows.append(row)
    return rows


def step_ratios(table: pd.DataFrame, reference: str, baselines: list[str]) -> list[dict[str, Any]]:
    """Paired by task and seed: ``reference``'s steps to threshold / a baseline's, the geometric mean
    with its 95% t-interval (on log ratios), per task and over every held-out task pooled. A run that
    never reached the threshold counts as the budget (censored: the ratio is then a bound)."""
    steps = table.assign(s=table["steps_to_threshold"].fillna(table["steps"]).clip(lower=1))
    pivot = steps.pivot_table(index=["task", "seed"], columns="method", values="s")
    rows = []
    if reference not in pivot:
        return rows
    for baseline in baselines:
        if baseline not in pivot or baseline == reference:
            continue
        logs = np.log(pivot[reference] / pivot[baseline]).dropna()
        for task in [*dict.fromkeys(logs.index.get_level_values(0)), None]:
            values = logs if task is None else logs.loc[task]
            if values.empty:
                continue
            half = t_half_width(values)
            mean = float(values.mean())
            rows.append({
                "task": task or "all", "baseline": baseline, "n": int(len(values)), "ratio": math.exp(mean),
                "low": math.exp(mean - half) if not math.isnan(half) else None,
                "high": math.exp(mean + half) if not math.isnan(half) else None,
            })  # fmt: skip
    return rows


def final_gaps(rows: list[dict[str, Any]], reference: str, metric: str = "test_accuracy") -> list[dict[str, Any]]:
    """Per task: the best method's mean ``metric`` other than ``reference``, and ``reference``'s gap to it (points)."""
    gaps = []
    for task in dict.fromkeys(r["task"] for r in rows):
        own = {r["method"]: r[metric] for r in rows if r["task"] == task and r[metric] is not None}
        if reference not in own or len(own) < 2:
            continue
        best = max((m for m in own if m != reference), key=lambda m: own[m])
        gaps.append({"task": task, "metric": metric, "best": best, "best_value": own[best],
                     "value": own[reference], "gap_points": 100 * (own[best] - own[reference])})  # fmt: skip
    return gaps
