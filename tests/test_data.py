"""metahpo.data: sources, task-type and column detection, split carving, mirror downloads, fail-fast Hub errors."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from metahpo.config import DatasetParams, DownloadParams, Params
from metahpo.data import DATASETS, check_source, source_task_type
from metahpo.data.columns import detect_columns
from metahpo.data.prepare import input_array, label_array, load_prepared
from metahpo.stages.download import download_dataset
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


def test_source_task_type_is_declared_without_loading():
    expected = {
        "mnist": "classification", "fashion_mnist": "classification", "cifar10": "classification",
        "imdb": "classification", "ag_news": "classification", "yelp_review_full": "classification",
        "digits": "classification", "squad_v2": "extractive_qa", "conll2003": "token_classification",
    }  # fmt: skip
    assert {name: source_task_type(name) for name in expected} == expected
    assert DATASETS.get("cifar10").hub_id == "uoft-cs/cifar10" and DATASETS.get("squad_v2").hub_id == "rajpurkar/squad_v2"
    assert source_task_type("someone/some_dataset") is None  # known only once downloaded
    with pytest.raises(MetahpoError, match="not-a-dataset"):
        source_task_type("not-a-dataset")


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
    with pytest.raises(DataError, match="cannot place the label column"):
        detect_columns(features(x=datasets.Value("string"), y=datasets.Value("int64")))


STRING = datasets.Value("string")
ANSWERS = {"text": datasets.List(STRING), "answer_start": datasets.List(datasets.Value("int32"))}


def test_token_classification_from_features_and_overrides():
    plan = detect_columns(features(words=datasets.List(STRING), labels=datasets.List(LABEL), n=datasets.Value("int32")))
    assert (plan.task_type, plan.roles, plan.ignored_columns) == (
        "token_classification", {"tokens": "words", "tags": "labels"}, ["n"]
    )
    several = features(words=datasets.List(STRING), pos=datasets.List(LABEL), ner=datasets.List(LABEL))
    with pytest.raises(DataError, match=r"pos, ner.*datasets\.wsj\.columns: \{tags: <column>\}"):
        detect_columns(several, dataset="wsj")
    assert detect_columns(several, columns={"tags": "ner"}).roles == {"tokens": "words", "tags": "ner"}
    with pytest.raises(DataError, match="'words'.*not a tag"):
        detect_columns(several, columns={"tags": "words"})


def test_qa_roles_from_value_lengths_and_id_rule():
    qa = features(key=STRING, topic=STRING, ask=STRING, passage=STRING, gold=ANSWERS)
    sample = {
        "key": ["a3f9", "0b12", "ffe0"],  # one length, no spaces, distinct: id-like
        "topic": ["Normans", "Normans", "Super_Bowl_50"],  # repeats: not an id, shorter than the question
        "ask": ["Who ruled Normandy in 911?", "When?", "Where was it played?"],
        "passage": ["The Normans were a people " * 5, "In 911 Rollo " * 4, "Super Bowl 50 was played " * 6],
    }
    plan = detect_columns(qa, sample=sample)
    assert plan.task_type == "extractive_qa"
    assert plan.roles == {"id": "key", "answers": "gold", "context": "passage", "question": "ask"}
    assert plan.ignored_columns == ["topic"]
    swapped = detect_columns(qa, sample=sample, columns={"question": "topic"})
    assert (swapped.roles["question"], swapped.roles["context"]) == ("topic", "passage")
    with pytest.raises(DataError, match="cannot place the question column"):
        detect_columns(features(key=STRING, passage=STRING, gold=ANSWERS), sample=sample)


def test_columns_override_errors_name_the_role():
    plain = features(x=STRING, y=LABEL)
    with pytest.raises(DataError, match="unknown role 'answer'.*answers"):
        detect_columns(plain, dataset="d", columns={"answer": "x"})
    with pytest.raises(DataError, match=r"datasets\.d\.columns\.input: d has no column 'body'"):
        detect_columns(plain, dataset="d", columns={"input": "body"})
    with pytest.raises(DataError, match="mix task types"):
        detect_columns(plain, dataset="d", columns={"input": "x", "question": "x"})
    with pytest.raises(DataError, match="not a ClassLabel"):
        detect_columns(plain, dataset="d", columns={"label": "x"})


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


def test_image_size_resizes_mixed_sizes_at_download(tmp_path, monkeypatch):
    import PIL.Image

    images = [PIL.Image.new("L", (4, 4), 10), PIL.Image.new("L", (5, 7), 20), PIL.Image.new("L", (4, 4), 30)]
    raw = datasets.Dataset.from_dict(
        {"img": images * 4, "y": [0, 1, 0] * 4}, features=features(img=datasets.Image(), y=LABEL)
    )
    from metahpo.data import sources

    monkeypatch.setitem(
        DATASETS._entries, "tiny_images", sources.BundledSource(lambda: datasets.DatasetDict({"train": raw}), "")
    )
    info = download_dataset("tiny_images", make_params(tiny_images={"source": "tiny_images", "image_size": 6}), tmp_path / "out")
    assert info["input_shape"] == [6, 6, 1]
    data, info = load_prepared(tmp_path / "out")
    pixels = input_array(data["train"], info)
    assert pixels.shape[1:] == (6, 6, 1) and set(np.unique(pixels)) <= {10, 20, 30}  # constant images stay constant


def test_group_column_is_kept_beside_label_and_input():
    feats = features(img=datasets.Image(), alphabet=datasets.ClassLabel(names=["a", "b"]), y=LABEL)
    plan = detect_columns(feats, "omni", columns={"label": "y", "group": "alphabet"})
    assert plan.roles == {"input": "img", "label": "y", "group": "alphabet"}
    assert plan.label_column == "y" and "alphabet" not in plan.ignored_columns
    with pytest.raises(DataError, match="columns.group: column 'note'.*ClassLabel or integer"):
        detect_columns(features(**feats, note=datasets.Value("string")), "omni", columns={"label": "y", "group": "note"})


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


def test_mnist_from_mirror_subsamples_before_decoding(mirror, tmp_path, monkeypatch):
    params = make_params(
        mirror, mnist={"source": "mnist", "max_train": 200, "max_validation": 50, "max_test": 60}
    )
    import PIL.Image

    opened = []  # every image decoded, by us or by datasets' Image feature (both go through PIL.Image.open)
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *args, **kwargs: opened.append(args) or real_open(*args, **kwargs))
    info = download_dataset("mnist", params, tmp_path / "mnist")
    assert info["source_split_sizes"] == {"train": 60000, "test": 10000}
    assert len(opened) == 200 + 50 + 60, f"{len(opened)} images decoded"  # the kept rows, not the source's 70000
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


SQUAD_SIZES = {"max_train": 300, "max_validation": 60, "max_test": 60}


def test_squad_v2_validation_only_is_carved_into_three_qa_splits(mirror, tmp_path):
    params = make_params(mirror, squad={"source": "squad_v2", **SQUAD_SIZES})
    info = download_dataset("squad", params, tmp_path / "a")
    assert info == download_dataset("squad", params, tmp_path / "b")
    assert info["task_type"] == "extractive_qa" and info["modality"] == "text"
    assert info["columns"] == {"id": "id", "question": "question", "context": "context", "answers": "answers"}
    assert info["ignored_columns"] == ["title"] and info["num_classes"] is None and info["label_names"] == []
    assert info["source_split_sizes"] == {"validation": 11873}
    assert sorted(info["carved"]) == ["test", "train", "validation"]
    assert info["split_sizes"] == {"train": 300, "validation": 60, "test": 60}

    data, _ = load_prepared(tmp_path / "a")
    again, _ = load_prepared(tmp_path / "b")
    ids = {}
    for split in data:
        rows = data[split]
        assert list(rows.features) == ["id", "question", "context", "answers"]
        assert rows.features["answers"]["answer_start"] == datasets.List(datasets.Value("int32"))
        assert rows["id"] == again[split]["id"]
        ids[split] = set(rows["id"])
        answers = rows["answers"]
        assert any(not a["text"] for a in answers) and any(a["text"] for a in answers)  # unanswerable kept
        for row in rows.select(range(20)):
            for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
                assert row["context"][start : start + len(text)] == text
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"] or ids["validation"] & ids["test"])
    with pytest.raises(DataError, match="extractive_qa"):
        input_array(data["train"], info)


def test_a_qa_dataset_with_other_column_names(tmp_path, monkeypatch):
    passages = ["Rollo was a Viking leader. He ruled Normandy from 911.", "The treaty was signed at Saint-Clair."]
    rows = 40
    raw = datasets.Dataset.from_dict(
        {
            "uid": [f"{i:08x}" for i in range(rows)],
            "passage": [passages[i % 2] for i in range(rows)],
            "query": [f"Who ruled question {i}?" if i % 2 == 0 else f"Where signed {i}?" for i in range(rows)],
            "gold": [{"text": ["Rollo"], "answer_start": [0]} if i % 4 else {"text": [], "answer_start": []} for i in range(rows)],
        },
        features=features(uid=STRING, passage=STRING, query=STRING, gold=ANSWERS),
    )
    from metahpo.data import sources

    monkeypatch.setitem(
        DATASETS._entries,
        "tiny_qa",
        sources.BundledSource(lambda: datasets.DatasetDict({"train": raw}), "", sources.EXTRACTIVE_QA),
    )
    info = download_dataset("tiny_qa", make_params(tiny_qa={"source": "tiny_qa"}), tmp_path / "qa")
    assert info["columns"] == {"id": "uid", "question": "query", "context": "passage", "answers": "gold"}
    assert info["carved"] == ["test", "validation"] and sum(info["split_sizes"].values()) == rows
    data, _ = load_prepared(tmp_path / "qa")
    first = data["train"][0]
    assert first["context"] in passages and first["question"].endswith("?") and len(first["id"]) == 8


def test_omniglot_from_mirror_keeps_alphabets_as_groups(mirror, tmp_path):
    from metahpo.data.prepare import group_array

    info = download_dataset("omniglot", make_params(mirror, omniglot={"source": "omniglot"}), tmp_path / "omniglot")
    assert info["num_classes"] == 242 and info["input_shape"] == [105, 105, 1]
    assert len(info["group_names"]) == 8 and "Japanese_(katakana)" in info["group_names"]
    assert info["columns"]["group"] == "alphabet" and "drawer" in info["ignored_columns"]
    data, _ = load_prepared(tmp_path / "omniglot")
    rows = sum(len(data[split]) for split in ("train", "validation", "test"))
    assert rows == 4840
    groups = np.concatenate([group_array(data[split]) for split in ("train", "validation", "test")])
    labels = np.concatenate([label_array(data[split]) for split in ("train", "validation", "test")])
    # a character belongs to one alphabet
    assert all(len(set(groups[labels == c])) == 1 for c in np.unique(labels))


def test_conll2003_needs_the_tag_column_named(mirror, tmp_path):
    params = make_params(
        mirror,
        ner={"source": "eriktks/conll2003", "columns": {"tags": "ner_tags"}, **SQUAD_SIZES},
        plain={"source": "eriktks/conll2003"},
        registered={"source": "conll2003", **SQUAD_SIZES},
    )
    with pytest.raises(DataError, match=r"pos_tags, chunk_tags, ner_tags.*datasets\.plain\.columns: \{tags: <column>\}"):
        download_dataset("plain", params, tmp_path / "plain")

    info = download_dataset("ner", params, tmp_path / "ner")
    assert info["task_type"] == "token_classification" and info["carved"] == []
    assert info["columns"] == {"tokens": "tokens", "tags": "ner_tags"}
    assert info["ignored_columns"] == ["id", "pos_tags", "chunk_tags"]
    names = info["label_names"]
    assert names[0] == "O" and len(names) == info["num_classes"] == 9
    assert all(name == "O" or name[:2] in {"B-", "I-"} for name in names)  # IOB2
    data, _ = load_prepared(tmp_path / "ner")
    assert data["train"].features["tags"] == datasets.List(datasets.ClassLabel(names=names))
    row = data["train"][0]
    assert len(row["tokens"]) == len(row["tags"]) and all(isinstance(t, str) for t in row["tokens"])
    # the registered short name carries {tags: ner_tags} as its default
    assert download_dataset("registered", params, tmp_path / "registered")["columns"] == info["columns"]


def _raise(error: Exception):
    raise error


def test_unreachable_hub_dataset_fails_fast_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("METAHPO_HF_MIRROR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # a closed local port stands in for the Hub, so the test does not depend on this machine's network
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    import socket

    # failing fast means one short connection probe, and never datasets.load_dataset, which retries
    # for ~25 s before giving up on an unreachable Hub
    probes, loads = [], []
    real_connect = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None, *rest, **kwargs: (
        probes.append((address, timeout)) or real_connect(address, timeout, *rest, **kwargs)))  # fmt: skip
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **_: loads.append(args) or _raise(ConnectionError()))
    params = make_params(tmp_path / "empty_mirror", cifar={"source": "cifar10"})
    with pytest.raises(DataError) as err:
        download_dataset("cifar", params, tmp_path / "cifar")
    assert loads == []
    assert len(probes) == 1 and probes[0][0] == ("127.0.0.1", 9) and 0 < probes[0][1] <= 10
    message = str(err.value)
    assert "uoft-cs/cifar10" in message and "download.mirror" in message and "METAHPO_HF_MIRROR" in message
