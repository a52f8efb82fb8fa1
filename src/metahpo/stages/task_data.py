"""A task's family, options and tensors, for the stages that train (sweep, train_recommended, tune)."""

from __future__ import annotations

from metahpo.training import prepare_task


def task_data(params, task: str, data_dir):
    """(family, options, tensors) of a task, for the stages that train (``metahpo.training.prepare_task``)."""
    entry = params.tasks[task].family
    return prepare_task(params.registered_family(entry), params.families[entry].options, task, data_dir)
