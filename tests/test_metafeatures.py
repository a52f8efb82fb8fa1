"""metahpo.metafeatures: one fixed set of names for every modality, sensible values, timings."""

from __future__ import annotations

import json

import pytest

from metahpo.config import DatasetParams, DownloadParams, MetafeatureParams, Params
from metahpo.data import download_dataset
from metahpo.metafeatures import FEATURE_NAMES, GROUPS, compute_metafeatures, write_metafeatures


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
    result = write_metafeatures(folders["digits"], out, params)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
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
    assert compute_metafeatures(folders["wine"], params)["features"] == compute_metafeatures(folders["wine"], params)["features"]


def test_same_names_for_image_tabular_and_text(prepared, mirror, tmp_path):
    params, folders = prepared
    text_params = make_params(
        mirror, imdb={"source": "imdb", "max_train": 200, "max_validation": 60, "max_test": 20}
    )
    download_dataset("imdb", text_params, tmp_path / "imdb")
    results = {
        "image": compute_metafeatures(folders["digits"], params),
        "tabular": compute_metafeatures(folders["wine"], params),
        "text": compute_metafeatures(tmp_path / "imdb", text_params),
    }
    for result in results.values():
        assert list(result["features"]) == FEATURE_NAMES
        assert sum(result["groups"].values(), []) == FEATURE_NAMES
        assert all(value is None or isinstance(value, float) for value in result["features"].values())
    tabular, text = results["tabular"]["features"], results["text"]["features"]
    assert tabular["tabular_dim"] == 13 and tabular["feature_skew_mean"] is not None and tabular["pixel_mean"] is None
    assert text["n_features"] == 2**12 and text["token_length_mean"] > 10 and text["vocabulary_size"] > 1000
    assert text["image_height"] is None and 0 <= text["landmark_logreg_projection"] <= 1
