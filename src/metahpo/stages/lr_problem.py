"""The learning-rate tasks of lr_meta and lr_eval: each task's tensors and the one config every method trains."""

from __future__ import annotations

from pathlib import Path

from metahpo.lrcontrol.controller import ControllerConfig
from metahpo.lrcontrol.meta_train import ESSettings, LRTask
from metahpo.stages.task_data import task_data


def lr_task(params, task: str, data_root) -> LRTask:
    """The family's default config with lr_control's batch size (the rate is each method's)."""
    family, options, data = task_data(params, task, Path(data_root) / params.task_dataset(task))
    config = {**params.families[params.tasks[task].family].default, "batch_size": params.lr_control.batch_size}
    return LRTask(task, family, options, data, config)


def controller_config(control) -> ControllerConfig:
    train = control.meta_train
    return ControllerConfig(hidden=train.hidden, every=train.every, max_change=train.max_change)


def es_settings(control) -> ESSettings:
    train = control.meta_train
    return ESSettings(train.iterations, train.population, train.sigma, train.meta_lr, control.steps, control.base_lr,
                      train.validate_every, train.checkpoint_every, control.trace_every, train.learn)  # fmt: skip
