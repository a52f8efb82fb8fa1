"""Meta-learning over sweeps: surrogate, nearest-task warm start, greedy portfolio, the safe rule, leave-one-task-out.

Everything is per model family (families have different search spaces). Candidates are the family's
seed grid, so every recommendation can be looked up in a task's grid rows (the fit_meta stage,
``metahpo.stages.fit_meta``, runs them). The tasks are the
meta-dataset of ``metahpo.hpo.metadataset`` that the HPO strategies read; the rankers share its
encoding, meta-feature scaler, regret and (``metahpo.hpo.surrogate``) the zero-shot surrogate.
"""

from metahpo.meta.candidates import CandidateGrid
from metahpo.meta.persist import load_meta_model, recommend, recommendation
from metahpo.meta.rankers import METHODS, FamilyMetaModel, greedy_portfolio, interleave_rankings

__all__ = [
    "METHODS",
    "CandidateGrid",
    "FamilyMetaModel",
    "greedy_portfolio",
    "interleave_rankings",
    "load_meta_model",
    "recommend",
    "recommendation",
]
