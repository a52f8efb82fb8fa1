"""What several stages read alike from the whole params (the library below them takes only sections)."""

from __future__ import annotations


def family_datasets(params, family: str) -> dict[str, str]:
    """task -> dataset, for the tasks of one ``families`` entry in task order (what hpo.sweep_tables reads)."""
    return {task: params.task_dataset(task) for task in params.tasks_of_family(family)}
