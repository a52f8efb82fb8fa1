"""The cnn and mlp families: canonical columns -> tensors, and models that take any input size.

``canonical_digits`` / ``canonical_tabular`` build prepared datasets in the metahpo.data contract
(docs/ARCHITECTURE.md); test_training.py and test_sweep.py import them.
"""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits, load_wine

from metahpo.models import FAMILIES

SPLIT_ROWS = {"train": slice(0, 1000), "validation": slice(1000, 1400), "test": slice(1400, None)}


def _dataset_dict(columns_of_split, features) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(columns, features=features) for name, columns in columns_of_split.items()}
    )


def canonical_digits(max_train: int | None = None) -> tuple[datasets.DatasetDict, dict]:
    """sklearn digits as the download stage writes them: uint8 8x8x1 images, ClassLabel labels."""
    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
    names = [str(i) for i in range(10)]
    features = datasets.Features(
        {"input": datasets.Array3D(shape=(8, 8, 1), dtype="uint8"), "label": datasets.ClassLabel(names=names)}
    )
    rows = dict(SPLIT_ROWS)
    if max_train is not None:
        rows["train"] = slice(0, max_train)
    data = _dataset_dict(
        {name: {"input": images[s], "label": digits.target[s]} for name, s in rows.items()}, features
    )
    info = {
        "dataset": "digits",
        "source": "digits",
        "modality": "image",
        "input_column": "image",
        "label_column": "label",
        "num_classes": 10,
        "label_names": names,
        "input_shape": [8, 8, 1],
        "split_sizes": {name: len(data[name]) for name in data},
        "carved": ["validation", "test"],
    }
    return data, info


def canonical_tabular() -> tuple[datasets.DatasetDict, dict]:
    """sklearn wine as tabular rows: float32 sequences of 13 features, 3 classes."""
    wine = load_wine()
    x, y = wine.data.astype(np.float32), wine.target
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    names = list(wine.target_names)
    features = datasets.Features(
        {"input": datasets.Sequence(datasets.Value("float32"), length=13), "label": datasets.ClassLabel(names=names)}
    )
    rows = {"train": slice(0, 110), "validation": slice(110, 140), "test": slice(140, None)}
    data = _dataset_dict({name: {"input": x[s], "label": y[s]} for name, s in rows.items()}, features)
    info = {
        "dataset": "wine",
        "source": "wine",
        "modality": "tabular",
        "input_column": "features",
        "label_column": "target",
        "num_classes": 3,
        "label_names": names,
        "input_shape": [13],
        "split_sizes": {name: len(data[name]) for name in data},
        "carved": ["validation", "test"],
    }
    return data, info


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models train ~10x faster on one thread, and far faster when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return canonical_digits()


def prepare(family_name: str, data, info):
    family = FAMILIES.get(family_name)
    return family.prepare(data, info, family.options({}))


def test_families_are_registered_with_the_params_yaml_spaces(repo_root):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    for name in ("cnn", "mlp"):
        family = FAMILIES.get(name)
        assert list(family.hyperparameters) == list(params["families"][name]["space"])
    assert FAMILIES.get("cnn").modalities == ("image",)
    assert set(FAMILIES.get("mlp").modalities) == {"image", "tabular"}


def test_cnn_prepare_gives_normalised_nchw_floats(digits):
    data, info = digits
    prepared = prepare("cnn", data, info)
    x = prepared.train.inputs["x"]
    assert x.dtype == torch.float32 and x.shape == (1000, 1, 8, 8)
    assert prepared.validation.inputs["x"].shape == (400, 1, 8, 8)
    assert prepared.train.labels.dtype == torch.long
    assert prepared.num_classes == 10
    # train statistics: mean 0, std 1 per channel; the other splits use the same shift and scale
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2
    raw = data["validation"].with_format("numpy")[:]["input"].astype(np.float64) / 255
    train_raw = data["train"].with_format("numpy")[:]["input"].astype(np.float64) / 255
    expected = (raw - train_raw.mean()) / train_raw.std()
    np.testing.assert_allclose(prepared.validation.inputs["x"].numpy()[:, 0], expected[..., 0], atol=1e-4)
    assert torch.equal(prepared.test.labels, torch.as_tensor(data["test"]["label"]))


@pytest.mark.parametrize("height,width,channels", [(8, 8, 1), (32, 32, 3), (5, 7, 3), (1, 1, 1)])
def test_cnn_takes_any_image_size(height, width, channels):
    family = FAMILIES.get("cnn")
    features = datasets.Features(
        {"input": datasets.Array3D(shape=(height, width, channels), dtype="uint8"), "label": datasets.ClassLabel(num_classes=4)}
    )
    rng = np.random.default_rng(0)
    columns = {"input": rng.integers(0, 256, (6, height, width, channels), dtype=np.uint8), "label": [0, 1, 2, 3, 0, 1]}
    data = _dataset_dict({name: columns for name in ("train", "validation", "test")}, features)
    prepared = family.prepare(data, {"modality": "image", "num_classes": 4}, family.options({}))
    model = family.build({"lr": 0.01, "batch_size": 2, "filters": 8, "dropout": 0.5}, prepared, family.options({}))
    logits = model(**prepared.train.inputs)
    assert logits.shape == (6, 4) and torch.isfinite(logits).all()


def test_mlp_flattens_and_standardises_images(digits):
    data, info = digits
    prepared = prepare("mlp", data, info)
    x = prepared.train.inputs["x"]
    assert x.shape == (1000, 64) and x.dtype == torch.float32
    # constant pixels (always 0 in digits) keep std 1 instead of dividing by zero
    assert torch.isfinite(x).all() and torch.isfinite(prepared.test.inputs["x"]).all()
    varying = x.std(dim=0) > 0
    assert torch.allclose(x.mean(dim=0), torch.zeros(64), atol=1e-4)
    assert torch.allclose(x.std(dim=0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-3)
    model = FAMILIES.get("mlp").build({"lr": 0.01, "batch_size": 32, "hidden": 16, "dropout": 0.2}, prepared, None)
    assert model(**prepared.test.batch(torch.arange(5))[0]).shape == (5, 10)
    hidden_layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [layer.out_features for layer in hidden_layers] == [16, 16, 10]


def test_mlp_on_tabular_rows():
    data, info = canonical_tabular()
    prepared = prepare("mlp", data, info)
    assert prepared.train.inputs["x"].shape == (110, 13)
    assert prepared.info["in_features"] == 13
    train = prepared.train.inputs["x"]
    assert torch.allclose(train.mean(dim=0), torch.zeros(13), atol=1e-4)
    # validation is scaled with the train statistics, not its own
    raw_train = np.asarray(data["train"]["input"], dtype=np.float32)
    raw_val = np.asarray(data["validation"]["input"], dtype=np.float32)
    expected = (raw_val - raw_train.mean(axis=0)) / raw_train.std(axis=0)
    np.testing.assert_allclose(prepared.validation.inputs["x"].numpy(), expected, rtol=1e-4, atol=1e-4)
