"""Stage train_recommended: a task's recommended config trained for the full budget: dvclive per epoch, safetensors weights.

The output folder appears all at once (``metahpo.io.atomic_dir``): an interrupted run leaves none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

from metahpo.errors import MetahpoError
from metahpo.pipeline import DVCLIVE_METRICS
from metahpo.io import read_json, write_json



def convergence(
    curve_val_metric: Sequence[float], curve_seconds: Sequence[float], threshold: float
) -> tuple[Optional[int], Optional[float]]:
    """(epochs, seconds) to the first epoch whose val metric reaches ``threshold`` x the run's best.

    Seconds are the cumulative epoch seconds up to and including that epoch. (None, None) when no
    epoch has a finite val metric.
    """
    finite = [v for v in curve_val_metric if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    target = threshold * max(finite)
    elapsed = 0.0
    for epoch, (value, seconds) in enumerate(zip(curve_val_metric, curve_seconds), start=1):
        elapsed += seconds
        if value is not None and math.isfinite(value) and value >= target:
            return epoch, elapsed
    raise AssertionError("unreachable: the best epoch reaches any threshold <= 1")


def read_recommendation(recommendations_path: str | Path, task: str, family_space: dict) -> dict[str, Any]:
    path = Path(recommendations_path)
    if not path.is_file():
        raise MetahpoError(f"{path} not found; run the fit_meta stage first")
    recommendations = read_json(path)
    if task not in recommendations:
        raise MetahpoError(f"{path} has no recommendation for task {task!r}; rerun the fit_meta stage")
    recommendation = recommendations[task]
    if set(recommendation["config"]) != set(family_space):
        raise MetahpoError(
            f"{path}: the config for {task!r} sets {sorted(recommendation['config'])} but the family's space is "
            f"{sorted(family_space)}; rerun the fit_meta stage"
        )
    return recommendation


def open_live(directory: Path):
    """A dvclive logger that writes files only: no git commit, no DVC experiment, no dvc.yaml."""
    from dvclive import Live

    return Live(dir=str(directory), save_dvc_exp=False, dvcyaml=None, report=None, monitor_system=False)


def save_weights(model, path: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(path))  # save_model also handles tied (shared) weights


def controller_policy(params, controller_dir: str | Path, family, config, data, options):
    """The learned controller on the family's own optimizer (lr_schedule: meta), checked before any training."""
    from metahpo.lrcontrol.controller import LRController, check_optimizer
    from metahpo.lrcontrol.methods import Controlled

    controller = LRController.load(controller_dir)
    check_optimizer(controller.config, family.optimizer(family.build(config, data, options), config))
    return Controlled(controller, params.lr_control.trace_every)


def train_recommended(
    task: str, params, data_dir: str | Path, recommendations_path: str | Path, out_dir: str | Path,
    controller_dir: Optional[str | Path] = None,
) -> dict[str, Any]:
    """Train ``task``'s recommended config for the full budget; write ``out_dir``; return metrics.json.

    With ``train_recommended.lr_schedule: meta`` the controller in ``controller_dir`` moves the rate.
    """
    from metahpo.io import atomic_dir
    from metahpo.stages.task_data import task_data
    from metahpo.training import resolve_device, train_model

    if task not in params.tasks:
        raise MetahpoError(f"unknown task {task!r}; valid names: {', '.join(sorted(params.tasks))}")
    family_name = params.tasks[task].family
    family_params = params.families[family_name]
    recommendation = read_recommendation(recommendations_path, task, family_params.space)
    config = recommendation["config"]

    family, options, data = task_data(params, task, data_dir)
    threshold = params.train_recommended.convergence_threshold
    schedule = params.train_recommended.lr_schedule
    policy = controller_policy(params, controller_dir, family, config, data, options) if schedule == "meta" else None

    with atomic_dir(out_dir) as tmp:
        with open_live(tmp / "dvclive") as live:
            live.log_params({"task": task, "family": family_name, **config})

            def log_epoch(epoch: int, record: dict[str, float]) -> None:
                for name in DVCLIVE_METRICS:  # the files the stage table declares as plots
                    live.log_metric(name, record[name])
                live.next_step()

            result = train_model(
                family,
                data,
                config,
                epochs=params.train_recommended.epochs,
                seed=params.seed,
                device=resolve_device(params.device),
                precision=params.precision,
                options=options,
                on_epoch=log_epoch,
                keep_model=True,
                policy=policy,
            )
        # A recommendation that diverges (or hits OOM) is a result, not a crash: it is recorded in
        # metrics.json and the report, and the weights file says why it holds no tensors.
        from safetensors.torch import save_file

        if result.model is not None and result.state == "ok":
            save_weights(result.model, tmp / "model.safetensors")
        else:
            save_file({}, str(tmp / "model.safetensors"), metadata={"state": result.state, "message": result.message})
        epochs_to_convergence, seconds_to_convergence = convergence(
            result.curve_val_metric, result.curve_seconds, threshold
        )
        finite_curve = [v for v in result.curve_val_metric if math.isfinite(v)]
        metrics = {
            "task": task,
            "family": family_name,
            "config": config,
            "method": recommendation.get("method"),
            "lr_schedule": schedule,
            "lr_trace": [(p["step"], p["lr"]) for p in result.trace],  # with lr_schedule: meta
            "state": result.state,
            "message": result.message,
            "metric": result.metric,  # the family's primary metric: what val_metric and test_metric measure
            "val_metric": result.val_metric,
            "test_metric": result.test_metric,
            "test_metrics": result.test_metrics,  # every test metric of the task type
            "test_accuracy": result.test_accuracy,  # classification only (NaN otherwise)
            "test_macro_f1": result.test_macro_f1,  # classification only (NaN otherwise)
            "best_val_metric": max(finite_curve) if finite_curve else None,
            "seconds": result.seconds,
            "epochs_run": result.epochs_run,
            "epochs_to_convergence": epochs_to_convergence,
            "seconds_to_convergence": seconds_to_convergence,
            "threshold": threshold,
            "device": result.device,
        }
        write_json(tmp / "metrics.json", metrics)
    return metrics


def run(params, job) -> None:
    data_dir, recommendations, controller_dir = job.deps
    train_recommended(job.key, params, data_dir, recommendations, Path(job.outs[0]).parent, controller_dir)
