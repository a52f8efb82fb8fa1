"""Evaluation metrics by task type; higher is better for every key a family optimises.

- classification: accuracy, macro-F1, macro precision, macro recall (scikit-learn);
- extractive QA: SQuAD v2 exact match / F1, official normalisation, HasAns / NoAns (``squad``);
- token classification: entity-level precision / recall / F1 (seqeval, ``entities``).
"""

from metahpo.metrics.classification import classification_metrics
from metahpo.metrics.squad import squad_v2_metrics
from metahpo.metrics.entities import entity_metrics

__all__ = ["classification_metrics", "squad_v2_metrics", "entity_metrics"]
