"""metahpo.metafeatures: one fixed set of names for every modality and task type, sensible values, timings."""

from __future__ import annotations

import json

import pytest

from metahpo.config import DatasetParams, DownloadParams, MetafeatureParams, Params
from metahpo.stages.download import download_dataset
from metahpo.metafeatures import FEATURE_NAMES, GROUPS, compute_metafeatures


def make_params(mirror=None, **datasets_spec: dict) -> Params:
    return Params.model_construct(
        seed=0,
        datasets={name: DatasetParams(**spec) for name, spec in datasets_spec.items()},
        download=DownloadParams(mirror=str(mirror) if mirror else None),
        metafeatures=MetafeatureParams(max_rows=1000, projection_dim=16),
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Params, dict]:
    """digits (image) and wine (tabular) prepared once for the module."""
    root = tmp_path_factory.mktemp("data")
    params = make_params(digits={"source": "digits"}, wine={"source": "wine"})
    for name in params.datasets:
        download_dataset(name, params, root / name)
    return params, {name: root / name for name in params.datasets}


def test_digits_metafeatures_are_sensible(prepared, tmp_path):
    params, folders = prepared
    out = tmp_path / "digits.json"
    result = compute_metafeatures(folders["digits"], params.metafeatures, params.seed)
    out.write_text(json.dumps(result))
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))  # JSON-safe: no NaN, no numpy types
    features = result["features"]
    assert result["dataset"] == "digits"
    assert features["n_classes"] == 10 and features["is_image"] == 1.0
    assert features["n_features"] == 64 and features["image_channels"] == 1
    assert features["landmark_1nn"] > 0.8
    assert 0 < features["landmark_stump"] < features["landmark_1nn"]
    assert 0.9 < features["class_entropy_normalized"] <= 1.0
    assert features["token_length_mean"] is None and features["feature_skew_mean"] is None
    for name in GROUPS["landmarkers"] + ["simple", "statistical"]:
        assert result["seconds"][name] >= 0


def test_metafeatures_are_deterministic_apart_from_seconds(prepared):
    params, folders = prepared
    assert compute_metafeatures(folders["wine"], params.metafeatures, params.seed)["features"] == compute_metafeatures(folders["wine"], params.metafeatures, params.seed)["features"]


def test_same_names_for_image_tabular_and_text(prepared, mirror, tmp_path):
    params, folders = prepared
    text_params = make_params(
        mirror, imdb={"source": "imdb", "max_train": 200, "max_validation": 60, "max_test": 20}
    )
    download_dataset("imdb", text_params, tmp_path / "imdb")
    results = {
        "image": compute_metafeatures(folders["digits"], params.metafeatures, params.seed),
        "tabular": compute_metafeatures(folders["wine"], params.metafeatures, params.seed),
        "text": compute_metafeatures(tmp_path / "imdb", text_params.metafeatures, text_params.seed),
    }
    for result in results.values():
        assert list(result["features"]) == FEATURE_NAMES
        assert sum(result["groups"].values(), []) == FEATURE_NAMES
        assert all(value is None or isinstance(value, float) for value in result["features"].values())
    tabular, text = results["tabular"]["features"], results["text"]["features"]
    assert tabular["tabular_dim"] == 13 and tabular["feature_skew_mean"] is not None and tabular["pixel_mean"] is None
    assert text["n_features"] == 2**12 and text["token_length_mean"] > 10 and text["vocabulary_size"] > 1000
    assert text["image_height"] is None and 0 <= text["landmark_logreg_projection"] <= 1


def test_qa_token_classification_and_image_share_the_names(mirror, tmp_path):
    sizes = {"max_train": 200, "max_validation": 60, "max_test": 20}
    params = make_params(
        mirror,
        squad={"source": "squad_v2", **sizes},
        conll={"source": "eriktks/conll2003", "columns": {"tags": "ner_tags"}, **sizes},
        mnist={"source": "mnist", **sizes},
    )
    results = {}
    for name in params.datasets:
        download_dataset(name, params, tmp_path / name)
        results[name] = compute_metafeatures(tmp_path / name, params.metafeatures, params.seed)
    for result in results.values():
        assert list(result["features"]) == FEATURE_NAMES
        assert all(value is None or isinstance(value, float) for value in result["features"].values())
        assert all(result["seconds"][name] >= 0 for name in GROUPS["landmarkers"])
    squad, conll, mnist = (results[name]["features"] for name in ("squad", "conll", "mnist"))

    assert squad["is_qa"] == 1.0 and squad["is_token_classification"] == 0.0 and squad["n_classes"] is None
    assert squad["context_length_mean"] > 5 * squad["question_length_mean"] > 0
    assert 0.2 < squad["unanswerable_fraction"] < 0.8  # unanswerable questions are kept
    assert squad["tokens_per_sentence_mean"] is None and 0 <= squad["landmark_1nn"] <= 1

    assert conll["is_token_classification"] == 1.0 and conll["n_classes"] == 9 and conll["entity_tag_count"] == 4
    assert 0 < conll["non_o_tag_fraction"] < 0.5 and conll["tokens_per_sentence_mean"] > 3
    assert conll["unanswerable_fraction"] is None and 0 <= conll["landmark_stump"] <= 1

    assert mnist["is_qa"] == mnist["is_token_classification"] == 0.0 and mnist["is_image"] == 1.0
    assert mnist["context_length_mean"] is None and mnist["entity_tag_count"] is None
