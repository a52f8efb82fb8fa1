"""metahpo.data: sources, column detection, split carving, mirror downloads, fail-fast Hub errors."""

from __future__ import annotations

import time

import datasets
import numpy as np
import pytest

from metahpo.config import DatasetParams, DownloadParams, Params
from metahpo.data import (
    DATASETS,
    check_source,
    detect_columns,
    download_dataset,
    input_array,
    label_array,
    load_prepared,
)
from metahpo.errors import DataError, MetahpoError


def make_params(mirror=None, seed: int = 0, **datasets_spec: dict) -> Params:
    return Params.model_construct(
        seed=seed,
        datasets={name: DatasetParams(**spec) for name, spec in datasets_spec.items()},
        download=DownloadParams(mirror=str(mirror) if mirror else None),
    )


# --- sources -------------------------------------------------------------------------------------


def test_registered_names_and_hub_ids_pass_check_source():
    for name in ["digits", "wine", "breast_cancer", "iris", "mnist", "imdb", "cifar10", "ag_news"]:
        assert name in DATASETS
        check_source(name)
    check_source("someone/some_dataset")


def test_unknown_source_error_lists_valid_names():
    with pytest.raises(MetahpoError) as err:
        check_source("not-a-dataset")
    assert "not-a-dataset" in str(err.value)
    for name in DATASETS.names():
        assert name in str(err.value)


# --- column detection -----------------------------------------------------------------------------


def features(**columns) -> datasets.Features:
    return datasets.Features(columns)


LABEL = datasets.ClassLabel(names=["a", "b"])


def test_detects_image_text_and_tabular_from_features_not_names():
    image = detect_columns(features(pic=datasets.Image(), y=LABEL, idx=datasets.Value("int32")))
    assert (image.modality, image.input_columns, image.label_column, image.ignored_columns) == (
        "image", ["pic"], "y", ["idx"]
    )
    text = detect_columns(features(klass=LABEL, body=datasets.Value("string")))
    assert (text.modality, text.input_columns, text.label_column) == ("text", ["body"], "klass")
    tabular = detect_columns(
        features(f1=datasets.Value("float64"), f2=datasets.Value("int64"), target=LABEL)
    )
    assert (tabular.modality, tabular.input_columns, tabular.label_column) == ("tabular", ["f1", "f2"], "target")


def test_unplaceable_column_error_names_it():
    with pytest.raises(DataError, match="'boxes'"):
        detect_columns(features(img=datasets.Image(), boxes=datasets.List(datasets.Value("float32")), y=LABEL))


def test_several_labels_or_none_are_errors():
    with pytest.raises(DataError, match="y1, y2"):
        detect_columns(features(x=datasets.Value("string"), y1=LABEL, y2=LABEL))
    with pytest.raises(DataError, match="no ClassLabel column"):
        detect_columns(features(x=datasets.Value("string"), y=datasets.Value("int64")))
    with pytest.raises(DataError, match="sequence labelling"):
        detect_columns(features(tokens=datasets.List(datasets.Value("string")), tags=datasets.List(LABEL)))


def test_images_of_varying_size_are_an_error(tmp_path, monkeypatch):
    import PIL.Image

    images = [PIL.Image.new("L", (4, 4)), PIL.Image.new("L", (5, 4)), PIL.Image.new("L", (4, 4))]
    raw = datasets.Dataset.from_dict(
        {"img": images * 4, "y": [0, 1, 0] * 4}, features=features(img=datasets.Image(), y=LABEL)
    )
    from metahpo.data import sources

    monkeypatch.setitem(
        DATASETS._entries, "tiny_images", sources.BundledSource(lambda: datasets.DatasetDict({"train": raw}), "")
    )
    with pytest.raises(DataError, match="differ in size"):
        download_dataset("tiny_images", make_params(tiny_images={"source": "tiny_images"}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- bundled downloads ----------------------------------------------------------------------------


def test_digits_download_carves_splits_and_is_deterministic(tmp_path):
    params = make_params(digits={"source": "digits"}, small={"source": "digits", "max_train": 300})
    info = download_dataset("digits", params, tmp_path / "digits")
    again = download_dataset("digits", params, tmp_path / "digits_again")
    assert info == again
    assert info["modality"] == "image" and info["input_shape"] == [8, 8, 1]
    assert info["carved"] == ["test", "validation"] and info["num_classes"] == 10
    sizes = info["split_sizes"]
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(0.2 * 1797) and sizes["validation"] == round(0.15 * 1797)

    data, loaded_info = load_prepared(tmp_path / "digits")
    other, _ = load_prepared(tmp_path / "digits_again")
    assert loaded_info == info and set(data) == {"train", "validation", "test"}
    assert data["train"].features["input"] == datasets.Array3D(shape=(8, 8, 1), dtype="uint8")
    for split in data:
        pixels = input_array(data[split], info)
        assert pixels.dtype == np.uint8 and pixels.max() == 255
        np.testing.assert_array_equal(pixels, input_array(other[split], info))
        np.testing.assert_array_equal(label_array(data[split]), label_array(other[split]))

    small = download_dataset("small", params, tmp_path / "small")
    assert small["split_sizes"] == {**sizes, "train": 300}
    small_data, _ = load_prepared(tmp_path / "small")
    counts = np.bincount(label_array(small_data["train"]), minlength=10)
    assert counts.min() >= 28  # stratified: about 30 of each digit
    # the carved test split does not depend on max_train
    np.testing.assert_array_equal(input_array(small_data["test"], small), input_array(data["test"], info))


def test_wine_is_tabular_and_seed_changes_the_carving(tmp_path):
    info = download_dataset("wine", make_params(wine={"source": "wine"}), tmp_path / "a")
    assert info["modality"] == "tabular" and info["input_shape"] == [13]
    assert info["label_names"] == ["class_0", "class_1", "class_2"]
    data, _ = load_prepared(tmp_path / "a")
    assert input_array(data["train"], info).dtype == np.float32
    download_dataset("wine", make_params(seed=1, wine={"source": "wine"}), tmp_path / "b")
    reseeded, _ = load_prepared(tmp_path / "b")
    # stratified and in source order, the labels agree; the rows chosen do not
    assert not np.array_equal(input_array(data["test"], info), input_array(reseeded["test"], info))


def test_load_prepared_on_a_missing_folder_says_to_run_download(tmp_path):
    with pytest.raises(DataError, match="download"):
        load_prepared(tmp_path / "nothing")


# --- Hub sources: the offline mirror, and failing fast without it -----------------------------------


def test_mnist_from_mirror_subsamples_before_decoding(mirror, tmp_path):
    params = make_params(
        mirror, mnist={"source": "mnist", "max_train": 200, "max_validation": 50, "max_test": 60}
    )
    start = time.perf_counter()
    info = download_dataset("mnist", params, tmp_path / "mnist")
    assert time.perf_counter() - start < 30
    assert info["origin"] == "mirror" and info["carved"] == ["validation"]
    assert info["split_sizes"] == {"train": 200, "validation": 50, "test": 60}
    assert info["input_shape"] == [28, 28, 1] and info["input_column"] == "image"
    data, _ = load_prepared(tmp_path / "mnist")
    assert len(np.unique(label_array(data["train"]))) == 10


def test_imdb_from_mirror_env_var_is_text(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("METAHPO_HF_MIRROR", str(mirror))
    params = make_params(imdb={"source": "stanfordnlp/imdb", "max_train": 100, "max_validation": 20, "max_test": 20})
    info = download_dataset("imdb", params, tmp_path / "imdb")
    assert info["modality"] == "text" and info["input_shape"] is None
    assert info["label_names"] == ["neg", "pos"] and info["split_sizes"]["train"] == 100
    data, _ = load_prepared(tmp_path / "imdb")
    texts = input_array(data["train"], info)
    assert all(isinstance(t, str) and t for t in texts)


def test_non_classification_mirror_dataset_is_a_clear_error(mirror, tmp_path):
    params = make_params(mirror, conll={"source": "eriktks/conll2003"})
    with pytest.raises(DataError, match="classification"):
        download_dataset("conll", params, tmp_path / "conll")


def test_unreachable_hub_dataset_fails_fast_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("METAHPO_HF_MIRROR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # a closed local port stands in for the Hub, so the test does not depend on this machine's network
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    params = make_params(tmp_path / "empty_mirror", cifar={"source": "cifar10"})
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        download_dataset("cifar", params, tmp_path / "cifar")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "uoft-cs/cifar10" in message and "download.mirror" in message and "METAHPO_HF_MIRROR" in message
