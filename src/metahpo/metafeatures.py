"""Meta-features of a prepared dataset: one fixed-width vector, the same names for every modality and task type.

Three groups, each timed: ``simple`` (sizes, classes, task type), ``statistical`` (modality and task
statistics; null where they do not apply) and ``landmarkers`` (validation accuracy of cheap learners
on a numeric view of at most ``metafeatures.max_rows`` train rows). The numeric view makes the
landmarkers comparable across modalities: images flattened to [0, 1], tabular standardized, text hashed.

Tasks without one class per row get a row-level view and target, so the same landmarkers apply:
- extractive QA: the hashed ``question + " " + context``, target answerable (1) / unanswerable (0);
- token classification: the hashed sentence (tokens joined by spaces), target "holds an entity"
  (a tag other than ``O``).
Class statistics (n_classes, entropy, imbalance) are of the task's own labels: the class label, or
every token's tag for token classification; null for QA (no classes).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np

from metahpo.data.columns import IMAGE, TABULAR, TEXT
from metahpo.data.prepare import input_array, label_array, load_prepared
from metahpo.data.sources import CLASSIFICATION, EXTRACTIVE_QA, TOKEN_CLASSIFICATION
from metahpo.data.splits import derive_seed

TEXT_HASH_FEATURES = 2**12  # width of the hashed bag of words: the text numeric view

SIMPLE = [
    "n_train", "n_validation", "n_test", "log_n_train", "n_classes", "class_entropy",
    "class_entropy_normalized", "imbalance_ratio", "minority_class_fraction", "n_features",
    "log_n_features", "rows_per_feature", "is_image", "is_text", "is_tabular",
    "is_qa", "is_token_classification",
]  # fmt: skip
STATISTICAL = [
    "image_height", "image_width", "image_channels", "pixel_mean", "pixel_std",
    "token_length_mean", "token_length_std", "vocabulary_size", "log_vocabulary_size",
    "tabular_dim", "feature_skew_mean", "feature_kurtosis_mean", "feature_abs_correlation_mean",
    "numeric_view_sparsity",
    "context_length_mean", "question_length_mean", "unanswerable_fraction",  # extractive QA
    "tokens_per_sentence_mean", "entity_tag_count", "non_o_tag_fraction",  # token classification
]  # fmt: skip
LANDMARKERS = ["landmark_logreg_projection", "landmark_1nn", "landmark_stump", "landmark_naive_bayes"]
GROUPS = {"simple": SIMPLE, "statistical": STATISTICAL, "landmarkers": LANDMARKERS}
FEATURE_NAMES = SIMPLE + STATISTICAL + LANDMARKERS


OUTSIDE_TAG = "O"  # IOB2: the tag of tokens outside every entity


def _column(split, name: str):
    return split.with_format("arrow")[name]


def _flat_tags(tags_column) -> np.ndarray:
    """Every token's tag id, sentences concatenated."""
    import pyarrow.compute as pc

    return pc.list_flatten(tags_column).to_numpy(zero_copy_only=False).astype(np.int64)


class _View:
    """The rows a dataset's meta-features are computed from: raw inputs, targets and the numeric view."""

    def __init__(self, data, info: dict[str, Any], max_rows: int, seed: int) -> None:
        self.task_type = info.get("task_type", CLASSIFICATION)
        self.modality = info["modality"]
        self.label_names = info["label_names"] or []
        self.is_entity_tag = np.array([name != OUTSIDE_TAG for name in self.label_names], dtype=bool)
        self.max_rows = max_rows
        self.seed = seed
        # the task's own labels over the whole train split (cheap to read): class statistics
        if self.task_type == CLASSIFICATION:
            self.all_train_labels = label_array(data["train"])
        elif self.task_type == TOKEN_CLASSIFICATION:
            self.all_train_labels = _flat_tags(_column(data["train"], "tags"))
        else:
            self.all_train_labels = None
        self.train_rows = self._sample(data["train"], "train")
        self.train_raw, self.train_labels = self._inputs_and_targets(self.train_rows, info)
        self.validation_raw, self.validation_labels = self._inputs_and_targets(
            self._sample(data["validation"], "validation"), info
        )
        self.train_x, self.validation_x = self._numeric(self.train_raw), self._numeric(self.validation_raw)
        if self.modality == TABULAR:
            # standardize with train statistics; constant features stay 0
            mean = self.train_x.mean(axis=0)
            std = self.train_x.std(axis=0)
            std[std == 0] = 1.0
            self.train_x = (self.train_x - mean) / std
            self.validation_x = (self.validation_x - mean) / std

    def _sample(self, split, name):
        """At most max_rows rows, a seeded choice (the same rows on every run)."""
        if len(split) > self.max_rows:
            rng = np.random.default_rng(derive_seed(self.seed, f"metafeatures-{name}"))
            split = split.select(np.sort(rng.choice(len(split), self.max_rows, replace=False)))
        return split

    def _inputs_and_targets(self, split, info):
        """(raw inputs, integer targets of the landmarkers): see the module docstring per task type."""
        if self.task_type == EXTRACTIVE_QA:
            questions, contexts = _column(split, "question").to_pylist(), _column(split, "context").to_pylist()
            texts = [f"{question} {context}" for question, context in zip(questions, contexts)]
            answered = [len(answers["text"]) > 0 for answers in _column(split, "answers").to_pylist()]
            return texts, np.array(answered, dtype=np.int64)
        if self.task_type == TOKEN_CLASSIFICATION:
            tags = _column(split, "tags").to_pylist()
            holds_entity = [bool(self.is_entity_tag[sentence].any()) for sentence in tags]
            texts = [" ".join(tokens) for tokens in _column(split, "tokens").to_pylist()]
            return texts, np.array(holds_entity, dtype=np.int64)
        return input_array(split, info), label_array(split)

    def _numeric(self, raw):
        if self.modality == IMAGE:
            return raw.reshape(len(raw), -1).astype(np.float32) / 255.0
        if self.modality == TEXT:
            from sklearn.feature_extraction.text import HashingVectorizer

            # stateless: the same text always hashes to the same vector, no vocabulary to fit
            return HashingVectorizer(n_features=TEXT_HASH_FEATURES, alternate_sign=False).transform(raw)
        return np.nan_to_num(raw.astype(np.float64))


def _class_statistics(labels: np.ndarray | None, n_classes: int | None) -> dict[str, float | None]:
    names = ["class_entropy", "class_entropy_normalized", "imbalance_ratio", "minority_class_fraction"]
    if labels is None or not n_classes or not len(labels):
        return dict.fromkeys(names)
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    return {
        "class_entropy": entropy,
        "class_entropy_normalized": entropy / math.log2(n_classes) if n_classes > 1 else None,
        "imbalance_ratio": float(counts.max() / counts.min()) if counts.min() > 0 else None,
        "minority_class_fraction": float(counts.min() / counts.sum()),
    }


def _simple(view: _View, info: dict[str, Any]) -> dict[str, float | None]:
    n_classes = info["num_classes"]
    n_train = info["split_sizes"]["train"]
    n_features = view.train_x.shape[1]
    return {
        "n_train": n_train,
        "n_validation": info["split_sizes"]["validation"],
        "n_test": info["split_sizes"]["test"],
        "log_n_train": math.log(n_train),
        "n_classes": n_classes,
        **_class_statistics(view.all_train_labels, n_classes),
        "n_features": n_features,
        "log_n_features": math.log(n_features),
        "rows_per_feature": n_train / n_features,
        "is_image": float(view.modality == IMAGE),
        "is_text": float(view.modality == TEXT),
        "is_tabular": float(view.modality == TABULAR),
        "is_qa": float(view.task_type == EXTRACTIVE_QA),
        "is_token_classification": float(view.task_type == TOKEN_CLASSIFICATION),
    }


def _word_count_mean(texts: list[str]) -> float:
    return float(np.mean([len(text.split()) for text in texts])) if texts else 0.0


def _task_statistics(view: _View) -> dict[str, float | None]:
    """QA and token-classification statistics, on the sampled train rows; {} for classification."""
    rows = view.train_rows
    if view.task_type == EXTRACTIVE_QA:
        return {
            "context_length_mean": _word_count_mean(_column(rows, "context").to_pylist()),
            "question_length_mean": _word_count_mean(_column(rows, "question").to_pylist()),
            "unanswerable_fraction": float(1.0 - view.train_labels.mean()),
        }
    if view.task_type == TOKEN_CLASSIFICATION:
        # entity types: IOB2 names with the B-/I- prefix dropped (B-PER, I-PER -> PER), O excluded
        types = {name.split("-", 1)[-1] for name in view.label_names if name != OUTSIDE_TAG}
        entity_tokens = view.is_entity_tag[_flat_tags(_column(rows, "tags"))]
        return {
            "tokens_per_sentence_mean": float(np.mean([len(t) for t in _column(rows, "tokens").to_pylist()])),
            "entity_tag_count": len(types),
            "non_o_tag_fraction": float(entity_tokens.mean()) if len(entity_tokens) else None,
        }
    return {}


def _statistical(view: _View) -> dict[str, float | None]:
    features: dict[str, float | None] = dict.fromkeys(STATISTICAL)
    x = view.train_x
    nonzero = x.nnz if hasattr(x, "nnz") else np.count_nonzero(x)
    features["numeric_view_sparsity"] = 1.0 - nonzero / (x.shape[0] * x.shape[1])
    if view.modality == IMAGE:
        height, width, channels = view.train_raw.shape[1:]
        pixels = view.train_raw.astype(np.float64) / 255.0
        features.update(
            image_height=height, image_width=width, image_channels=channels,
            pixel_mean=float(pixels.mean()), pixel_std=float(pixels.std()),
        )  # fmt: skip
    elif view.modality == TEXT:
        tokens = [text.lower().split() for text in view.train_raw]
        lengths = np.array([len(t) for t in tokens], dtype=float)
        vocabulary = len({token for row in tokens for token in row})
        features.update(
            token_length_mean=float(lengths.mean()), token_length_std=float(lengths.std()),
            vocabulary_size=vocabulary, log_vocabulary_size=math.log1p(vocabulary),
        )  # fmt: skip
    elif view.modality == TABULAR:
        from scipy.stats import kurtosis, skew

        raw = np.nan_to_num(view.train_raw.astype(np.float64))
        varying = raw[:, raw.std(axis=0) > 0]
        features["tabular_dim"] = raw.shape[1]
        if varying.shape[1]:
            features["feature_skew_mean"] = float(np.mean(skew(varying, axis=0)))
            features["feature_kurtosis_mean"] = float(np.mean(kurtosis(varying, axis=0)))
        if varying.shape[1] > 1:
            correlation = np.corrcoef(varying, rowvar=False)
            features["feature_abs_correlation_mean"] = float(
                np.abs(correlation[np.triu_indices_from(correlation, k=1)]).mean()
            )
    features.update(_task_statistics(view))
    return features


def _landmarker_models(view: _View, projection_dim: int, seed: int) -> dict[str, Callable[[], Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    n_features, k = view.train_x.shape[1], projection_dim
    # a fixed Gaussian projection (seeded): the same width whatever the dataset's input width
    projection = np.random.default_rng(derive_seed(seed, "metafeatures-projection")).normal(
        size=(n_features, k)
    ) / math.sqrt(k)

    def dense(x):
        return x.toarray() if hasattr(x, "toarray") else x

    return {
        "landmark_logreg_projection": lambda: make_pipeline(
            FunctionTransformer(lambda x: np.asarray(x @ projection)), StandardScaler(), LogisticRegression(max_iter=500)
        ),
        "landmark_1nn": lambda: KNeighborsClassifier(n_neighbors=1, algorithm="brute"),
        "landmark_stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=seed),
        "landmark_naive_bayes": lambda: make_pipeline(FunctionTransformer(dense), GaussianNB()),
    }


def _landmarkers(
    view: _View, models: dict[str, Callable[[], Any]], seconds: dict[str, float]
) -> dict[str, float | None]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    features: dict[str, float | None] = {}
    usable = len(view.validation_labels) > 0 and len(np.unique(view.train_labels)) > 1
    for name, make_model in models.items():
        start = time.perf_counter()
        if usable:
            model = make_model()
            with warnings.catch_warnings():
                # an unconverged logistic regression is still a landmarker: a cheap learner's score
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(view.train_x, view.train_labels)
            features[name] = float((model.predict(view.validation_x) == view.validation_labels).mean())
        else:
            features[name] = None
        seconds[name] = time.perf_counter() - start
    return features


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def compute_metafeatures(data_dir: str | os.PathLike, settings, seed: int) -> dict[str, Any]:
    """``{"dataset", "features": {name: float|null}, "groups": {group: [names]}, "seconds": {...}}``.

    ``settings`` is the params' ``metafeatures`` section (``max_rows``, ``projection_dim``).
    """
    data, info = load_prepared(data_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    view = _View(data, info, settings.max_rows, seed)
    seconds["numeric_view"] = time.perf_counter() - start

    features: dict[str, Any] = {}
    for group, compute in (("simple", lambda: _simple(view, info)), ("statistical", lambda: _statistical(view))):
        start = time.perf_counter()
        features.update(compute())
        seconds[group] = time.perf_counter() - start
    models = _landmarker_models(view, settings.projection_dim, seed)  # outside the clock: it imports scikit-learn
    start = time.perf_counter()
    features.update(_landmarkers(view, models, seconds))
    seconds["landmarkers"] = time.perf_counter() - start

    return {
        "dataset": info["dataset"],
        "features": {name: _finite_or_none(features[name]) for name in FEATURE_NAMES},
        "groups": {group: list(names) for group, names in GROUPS.items()},
        "seconds": seconds,
    }
