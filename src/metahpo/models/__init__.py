"""Model families. Importing this package registers every family in ``FAMILIES``."""

from metahpo.models.base import FAMILIES, Family, PreparedData, PreparedSplit

# each module registers its families on import
from metahpo.models import cnn, conv4, mlp, rnn, bert, vision, qa, ner  # noqa: E402,F401

__all__ = ["FAMILIES", "Family", "PreparedData", "PreparedSplit"]
