"""Meta-learning over sweeps: surrogate, nearest-task warm start, greedy portfolio, leave-one-task-out.

Everything is per model family (families have different search spaces). Candidates are the family's
seed grid, so every recommendation can be looked up in a task's grid rows.
"""

from metahpo.meta.fit import fit_meta
from metahpo.meta.methods import METHODS, FamilyMetaModel, greedy_portfolio, interleave_rankings
from metahpo.meta.persist import load_meta_model, recommend
from metahpo.meta.tasks import CandidateGrid, TaskSweep, load_task_sweep

__all__ = [
    "METHODS",
    "CandidateGrid",
    "FamilyMetaModel",
    "TaskSweep",
    "fit_meta",
    "greedy_portfolio",
    "interleave_rankings",
    "load_meta_model",
    "load_task_sweep",
    "recommend",
]
