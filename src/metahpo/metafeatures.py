"""Meta-features of a prepared dataset: one fixed-width vector, the same names for every modality.

Three groups, each timed: ``simple`` (sizes, classes), ``statistical`` (modality statistics; null
where they do not apply) and ``landmarkers`` (validation accuracy of cheap learners on a numeric
view of at most ``metafeatures.max_rows`` train rows). The numeric view makes the landmarkers
comparable across modalities: images flattened to [0, 1], tabular standardized, text hashed.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import numpy as np

from metahpo.config import Params
from metahpo.data.columns import IMAGE, TABULAR, TEXT
from metahpo.data.prepare import input_array, label_array, load_prepared
from metahpo.data.splits import derive_seed
from metahpo.io import write_json

TEXT_HASH_FEATURES = 2**12  # width of the hashed bag of words: the text numeric view

SIMPLE = [
    "n_train", "n_validation", "n_test", "log_n_train", "n_classes", "class_entropy",
    "class_entropy_normalized", "imbalance_ratio", "minority_class_fraction", "n_features",
    "log_n_features", "rows_per_feature", "is_image", "is_text", "is_tabular",
]  # fmt: skip
STATISTICAL = [
    "image_height", "image_width", "image_channels", "pixel_mean", "pixel_std",
    "token_length_mean", "token_length_std", "vocabulary_size", "log_vocabulary_size",
    "tabular_dim", "feature_skew_mean", "feature_kurtosis_mean", "feature_abs_correlation_mean",
    "numeric_view_sparsity",
]  # fmt: skip
LANDMARKERS = ["landmark_logreg_projection", "landmark_1nn", "landmark_stump", "landmark_naive_bayes"]
GROUPS = {"simple": SIMPLE, "statistical": STATISTICAL, "landmarkers": LANDMARKERS}
FEATURE_NAMES = SIMPLE + STATISTICAL + LANDMARKERS


class _View:
    """The rows a dataset's meta-features are computed from: raw inputs and the numeric view."""

    def __init__(self, data, info: dict[str, Any], params: Params) -> None:
        self.modality = info["modality"]
        self.max_rows = params.metafeatures.max_rows
        self.seed = params.seed
        self.all_train_labels = label_array(data["train"])
        self.train_raw, self.train_labels = self._rows(data["train"], info, "train")
        self.validation_raw, self.validation_labels = self._rows(data["validation"], info, "validation")
        self.train_x, self.validation_x = self._numeric(self.train_raw), self._numeric(self.validation_raw)
        if self.modality == TABULAR:
            # standardize with train statistics; constant features stay 0
            mean = self.train_x.mean(axis=0)
            std = self.train_x.std(axis=0)
            std[std == 0] = 1.0
            self.train_x = (self.train_x - mean) / std
            self.validation_x = (self.validation_x - mean) / std

    def _rows(self, split, info, name):
        """At most max_rows rows, a seeded choice (the same rows on every run)."""
        if len(split) > self.max_rows:
            rng = np.random.default_rng(derive_seed(self.seed, f"metafeatures-{name}"))
            split = split.select(np.sort(rng.choice(len(split), self.max_rows, replace=False)))
        return input_array(split, info), label_array(split)

    def _numeric(self, raw):
        if self.modality == IMAGE:
            return raw.reshape(len(raw), -1).astype(np.float32) / 255.0
        if self.modality == TEXT:
            from sklearn.feature_extraction.text import HashingVectorizer

            # stateless: the same text always hashes to the same vector, no vocabulary to fit
            return HashingVectorizer(n_features=TEXT_HASH_FEATURES, alternate_sign=False).transform(raw)
        return np.nan_to_num(raw.astype(np.float64))


def _simple(view: _View, info: dict[str, Any]) -> dict[str, float | None]:
    # class statistics from the whole train split: labels are cheap to read
    counts = np.bincount(view.all_train_labels, minlength=info["num_classes"]).astype(float)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    n_classes = info["num_classes"]
    n_train = info["split_sizes"]["train"]
    n_features = view.train_x.shape[1]
    return {
        "n_train": n_train,
        "n_validation": info["split_sizes"]["validation"],
        "n_test": info["split_sizes"]["test"],
        "log_n_train": math.log(n_train),
        "n_classes": n_classes,
        "class_entropy": entropy,
        "class_entropy_normalized": entropy / math.log2(n_classes) if n_classes > 1 else None,
        "imbalance_ratio": float(counts.max() / counts.min()) if counts.min() > 0 else None,
        "minority_class_fraction": float(counts.min() / counts.sum()),
        "n_features": n_features,
        "log_n_features": math.log(n_features),
        "rows_per_feature": n_train / n_features,
        "is_image": float(view.modality == IMAGE),
        "is_text": float(view.modality == TEXT),
        "is_tabular": float(view.modality == TABULAR),
    }


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
    else:
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
    return features


def _landmarker_models(view: _View, params: Params) -> dict[str, Callable[[], Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    n_features, k = view.train_x.shape[1], params.metafeatures.projection_dim
    # a fixed Gaussian projection (seeded): the same width whatever the dataset's input width
    projection = np.random.default_rng(derive_seed(params.seed, "metafeatures-projection")).normal(
        size=(n_features, k)
    ) / math.sqrt(k)

    def dense(x):
        return x.toarray() if hasattr(x, "toarray") else x

    return {
        "landmark_logreg_projection": lambda: make_pipeline(
            FunctionTransformer(lambda x: np.asarray(x @ projection)), StandardScaler(), LogisticRegression(max_iter=500)
        ),
        "landmark_1nn": lambda: KNeighborsClassifier(n_neighbors=1, algorithm="brute"),
        "landmark_stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=params.seed),
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


def compute_metafeatures(data_dir: str | os.PathLike, params: Params) -> dict[str, Any]:
    """``{"dataset", "features": {name: float|null}, "groups": {group: [names]}, "seconds": {...}}``."""
    data, info = load_prepared(data_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    view = _View(data, info, params)
    seconds["numeric_view"] = time.perf_counter() - start

    features: dict[str, Any] = {}
    for group, compute in (("simple", lambda: _simple(view, info)), ("statistical", lambda: _statistical(view))):
        start = time.perf_counter()
        features.update(compute())
        seconds[group] = time.perf_counter() - start
    models = _landmarker_models(view, params)  # outside the clock: it imports scikit-learn
    start = time.perf_counter()
    features.update(_landmarkers(view, models, seconds))
    seconds["landmarkers"] = time.perf_counter() - start

    return {
        "dataset": info["dataset"],
        "features": {name: _finite_or_none(features[name]) for name in FEATURE_NAMES},
        "groups": {group: list(names) for group, names in GROUPS.items()},
        "seconds": seconds,
    }


def write_metafeatures(data_dir: str | os.PathLike, out_path: str | os.PathLike, params: Params) -> dict[str, Any]:
    """Compute the meta-features of the prepared dataset in ``data_dir`` and write them as JSON (atomically)."""
    result = compute_metafeatures(data_dir, params)
    write_json(out_path, result)
    return result
