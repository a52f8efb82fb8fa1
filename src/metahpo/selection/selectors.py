"""Selectors: one interface, a registry. Each ranks the pool for a target from its K labelled examples.

A selector sees a ``Context``: the K labels, each member's features and source predictions on those
K examples, the member descriptors, and what the prior tasks taught (their ground-truth fine-tuning
outcomes and, for the meta-learned selector, the cheap scores they had). It returns one score per
member, higher = better; the meta-learned selector's score is a predicted fine-tuned metric with an
interval. Adding a selector touches this file only: a ``Selector`` subclass and its ``register`` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd

from metahpo.registry import Registry
from metahpo.selection import scores


@dataclass
class Context:
    """One target and one draw of its K labelled examples, seen through every serving member."""

    target: str
    redraw: int
    members: list[str]
    labels: np.ndarray  # (K,) integers 0..C-1
    num_classes: int
    modality: str
    features: dict[str, np.ndarray]  # member -> (K, D)
    source_probabilities: dict[str, Optional[np.ndarray]]  # member -> (K, classes of its own layer), None: no head
    descriptors: dict[str, dict[str, Any]]
    prior_truth: pd.DataFrame  # target, member, truth of the prior tasks (never this target)
    seed: int
    cheap_scores: dict[str, np.ndarray] = field(default_factory=dict)  # selector -> scores, filled in order
    input_seconds: float = 0.0  # embedding + every cheap score: what the meta-learned selector's inputs cost
    meta_selector: Any = None  # a fitted ``metahpo.selection.meta.MetaSelector`` (never fitted on this target)


@dataclass
class Ranking:
    score: np.ndarray  # one per member, higher = better
    lower: Optional[np.ndarray] = None  # an interval for a predicted metric (the meta-learned selector)
    upper: Optional[np.ndarray] = None


class Selector:
    name: ClassVar[str]
    uses_features: ClassVar[bool] = True  # its cost includes embedding the K examples through every member
    predicts_metric: ClassVar[bool] = False  # its score is the fine-tuned metric itself

    def rank(self, context: Context) -> Ranking:
        raise NotImplementedError


SELECTORS: Registry[Selector] = Registry("selector")


def _per_member(context: Context, function) -> Ranking:
    return Ranking(np.array([function(member) for member in context.members], dtype=np.float64))


class RandomSelector(Selector):
    """Uniformly random scores: what a user without any method gets on average."""

    name = "random"
    uses_features = False

    def rank(self, context: Context) -> Ranking:
        from metahpo.data.splits import derive_seed

        rng = np.random.default_rng(derive_seed(context.seed, f"random-selector-{context.target}"))
        return Ranking(rng.random(len(context.members)))


class BestOnAverage(Selector):
    """The member with the best mean fine-tuned metric over the prior tasks it served: no meta-features."""

    name = "best_on_average"
    uses_features = False

    def rank(self, context: Context) -> Ranking:
        means = context.prior_truth.groupby("member")["truth"].mean()
        return _per_member(context, lambda m: float(means.get(m, -np.inf)))


class KnnAccuracy(Selector):
    """Leave-one-out accuracy of a cosine 1-nearest-neighbour classifier on the frozen features."""

    name = "knn"

    def rank(self, context: Context) -> Ranking:
        def accuracy(member: str) -> float:
            f = context.features[member]
            f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
            similarity = f @ f.T
            np.fill_diagonal(similarity, -np.inf)
            return float(np.mean(context.labels[similarity.argmax(axis=1)] == context.labels))

        return _per_member(context, accuracy)


class LinearProbe(Selector):
    """Cross-validated accuracy of a logistic regression on the frozen (standardised) features."""

    name = "linear_probe"

    def rank(self, context: Context) -> Ranking:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        smallest = int(np.bincount(context.labels).min())
        folds = StratifiedKFold(n_splits=max(2, min(4, smallest)), shuffle=True, random_state=context.seed)

        def accuracy(member: str) -> float:
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
            return float(cross_val_score(probe, context.features[member], context.labels, cv=folds).mean())

        return _per_member(context, accuracy)


class FeatureScore(Selector):
    """A transferability score of the features (``metahpo.selection.scores``)."""

    function: ClassVar[Any]

    def rank(self, context: Context) -> Ranking:
        return _per_member(context, lambda m: type(self).function(context.features[m], context.labels))


class PredictionScore(Selector):
    """A transferability score of the source predictions; NaN for a member without its own classifier."""

    function: ClassVar[Any]
    uses_features = True

    def rank(self, context: Context) -> Ranking:
        def value(member: str) -> float:
            probabilities = context.source_probabilities[member]
            return np.nan if probabilities is None else type(self).function(probabilities, context.labels)

        return _per_member(context, value)


class LogME(FeatureScore):
    name = "logme"
    function = staticmethod(scores.logme)


class HScore(FeatureScore):
    name = "hscore"
    function = staticmethod(scores.hscore)


class LEEP(PredictionScore):
    name = "leep"
    function = staticmethod(scores.leep)


class NCE(PredictionScore):
    name = "nce"
    function = staticmethod(lambda p, y: scores.nce(p.argmax(axis=1), y))


for _selector in (RandomSelector, BestOnAverage, KnnAccuracy, LinearProbe, LogME, LEEP, NCE, HScore):
    SELECTORS.register(_selector.name, _selector())

CHEAP = ("knn", "linear_probe", "logme", "leep", "nce", "hscore")  # what the meta-learned selector reads
