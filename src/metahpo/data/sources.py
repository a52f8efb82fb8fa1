"""Where datasets come from: the ``DATASETS`` registry. Adding a source touches only this file.

Importing this module is cheap (no ``datasets``, no scikit-learn): config validation calls
``check_source`` (and ``source_task_type``, to pair datasets with model families) for every dataset
in params.yaml. Each registered source declares its task type; the loaders import their libraries lazily.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from metahpo.registry import Registry, UnknownNameError

HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

CLASSIFICATION, EXTRACTIVE_QA, TOKEN_CLASSIFICATION = "classification", "extractive_qa", "token_classification"
TASK_TYPES = (CLASSIFICATION, EXTRACTIVE_QA, TOKEN_CLASSIFICATION)
# the canonical roles a source column can be assigned to with ``datasets.<name>.columns``, per task type
ROLES_BY_TASK_TYPE = {
    CLASSIFICATION: ("input", "label", "group"),
    EXTRACTIVE_QA: ("id", "question", "context", "answers"),
    TOKEN_CLASSIFICATION: ("tokens", "tags"),
}
COLUMN_ROLES = tuple(dict.fromkeys(role for roles in ROLES_BY_TASK_TYPE.values() for role in roles))


@dataclass(frozen=True)
class BundledSource:
    """A dataset shipped inside a Python package: offline, small, one ``train`` split."""

    load: Callable[[], "object"]  # () -> datasets.DatasetDict
    description: str
    task_type: str = CLASSIFICATION


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face Hub dataset, read from the offline mirror when it holds a copy."""

    hub_id: str
    description: str = ""
    # declared so config validation can match dataset and model family without loading anything
    task_type: Optional[str] = None  # None: unknown until the features are read (an unregistered id)
    # role -> column defaults for an ambiguous source; datasets.<name>.columns overrides them per role
    columns: dict[str, str] = field(default_factory=dict)


Source = Union[BundledSource, HubSource]

DATASETS: Registry[Source] = Registry("dataset source")


def check_source(source: str) -> None:
    """Accept a registered name or anything shaped like a Hub id ``org/name``; cheap, no network."""
    if source in DATASETS or HUB_ID_PATTERN.match(source):
        return
    raise UnknownNameError(
        f"unknown dataset source {source!r}; valid names: {', '.join(DATASETS.names())}; "
        "or give a Hugging Face Hub id shaped like org/name"
    )


def source_task_type(source: str) -> Optional[str]:
    """The declared task type of a registered source; None for a Hub id (known only after download)."""
    check_source(source)
    return DATASETS.get(source).task_type if source in DATASETS else None


def resolve_source(source: str) -> Source:
    """The registered entry, or a ``HubSource`` for a Hub id that is not registered."""
    check_source(source)
    if source in DATASETS:
        return DATASETS.get(source)
    return HubSource(hub_id=source)


# --- bundled (scikit-learn) --------------------------------------------------------------------


def _load_digits():
    """8x8 grayscale digits as an image dataset: values 0..16 rescaled to uint8 0..255."""
    import datasets
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    features = datasets.Features(
        {
            "image": datasets.Array3D(shape=pixels.shape[1:], dtype="uint8"),
            "target": datasets.ClassLabel(names=[str(name) for name in bunch.target_names]),
        }
    )
    train = datasets.Dataset.from_dict({"image": pixels, "target": bunch.target}, features=features)
    return datasets.DatasetDict({"train": train})


def _tabular_loader(sklearn_loader_name: str) -> Callable[[], "object"]:
    """A loader for one of scikit-learn's tabular toy datasets: one float column per feature."""

    def load():
        import datasets
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, sklearn_loader_name)()
        columns = {name: bunch.data[:, j] for j, name in enumerate(bunch.feature_names)}
        features = {name: datasets.Value("float64") for name in bunch.feature_names}
        columns["target"] = bunch.target
        features["target"] = datasets.ClassLabel(names=[str(name) for name in bunch.target_names])
        train = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
        return datasets.DatasetDict({"train": train})

    return load


DATASETS.register("digits", BundledSource(_load_digits, "scikit-learn digits: 1797 8x8 grayscale images, 10 classes"))
DATASETS.register("wine", BundledSource(_tabular_loader("load_wine"), "scikit-learn wine: 178 rows, 13 features, 3 classes"))
DATASETS.register(
    "breast_cancer",
    BundledSource(_tabular_loader("load_breast_cancer"), "scikit-learn breast cancer: 569 rows, 30 features, 2 classes"),
)
DATASETS.register("iris", BundledSource(_tabular_loader("load_iris"), "scikit-learn iris: 150 rows, 4 features, 3 classes"))

# --- Hugging Face Hub ---------------------------------------------------------------------------

DATASETS.register("mnist", HubSource("ylecun/mnist", "28x28 grayscale digits, 10 classes", CLASSIFICATION))
DATASETS.register(
    "fashion_mnist",
    HubSource("zalando-datasets/fashion_mnist", "28x28 grayscale clothing, 10 classes", CLASSIFICATION),
)
DATASETS.register("cifar10", HubSource("uoft-cs/cifar10", "32x32 colour images (column img), 10 classes", CLASSIFICATION))
DATASETS.register(
    "omniglot",
    HubSource("omniglot/background_small", "Omniglot background-small: 242 characters x 20 drawers, 105x105, "
              "8 alphabets (column group)", CLASSIFICATION, columns={"label": "label", "group": "alphabet"}),
)  # fmt: skip
DATASETS.register("imdb", HubSource("stanfordnlp/imdb", "movie review sentiment, 2 classes", CLASSIFICATION))
DATASETS.register("ag_news", HubSource("fancyzhx/ag_news", "news topic, 4 classes", CLASSIFICATION))
DATASETS.register("yelp_review_full", HubSource("Yelp/yelp_review_full", "review stars, 5 classes", CLASSIFICATION))
DATASETS.register(
    "squad_v2",
    HubSource("rajpurkar/squad_v2", "extractive QA with unanswerable questions (SQuAD 2.0)", EXTRACTIVE_QA),
)
# three tag columns (pos_tags, chunk_tags, ner_tags): the seed experiments are named-entity recognition
DATASETS.register(
    "conll2003",
    HubSource("eriktks/conll2003", "named-entity recognition, IOB2 tags (CoNLL-2003)", TOKEN_CLASSIFICATION,
              columns={"tags": "ner_tags"}),
)  # fmt: skip
