"""train_recommended: convergence on hand-worked curves, then end to end on a tiny digits dataset."""

from __future__ import annotations

import json

import math

import numpy as np
import pytest

from metahpo.config import Params
from metahpo.errors import MetahpoError
from metahpo.io import read_json, write_json
from metahpo.stages.train_recommended import convergence, train_recommended

CONFIG = {"lr": 0.01, "batch_size": 32, "hidden": 32, "dropout": 0.2}


@pytest.mark.parametrize(
    "threshold, expected",
    [(0.9, (3, 6.0)), (0.8, (2, 3.0)), (1.0, (4, 10.0)), (0.1, (1, 1.0))],
)
def test_convergence_hand_worked(threshold, expected):
    # best is 1.0 at epoch 4; seconds accumulate 1, 3, 6, 10, 15
    assert convergence([0.5, 0.8, 0.9, 1.0, 0.95], [1, 2, 3, 4, 5], threshold) == expected


def test_convergence_skips_nan_and_handles_empty_curves():
    assert convergence([math.nan, 0.4, 0.5], [1.0, 1.0, 1.0], 0.8) == (2, 2.0)
    assert convergence([], [], 0.95) == (None, None)
    assert convergence([math.nan], [1.0], 0.95) == (None, None)


def make_params(epochs: int = 3) -> Params:
    space = {
        "lr": {"values": [0.001, 0.01], "sample": "loguniform"},
        "batch_size": {"values": [32, 64]},
        "hidden": {"values": [32, 64]},
        "dropout": {"values": [0.2, 0.5]},
    }
    return Params(
        seed=0,
        device="cpu",
        datasets={"tiny_digits": {"source": "digits"}},
        tasks={"tiny_digits-mlp": {"dataset": "tiny_digits", "family": "mlp"}},
        families={"mlp": {"space": space, "default": {"lr": 0.001, "batch_size": 32, "hidden": 32, "dropout": 0.2}}},
        train_recommended={"epochs": epochs, "convergence_threshold": 0.9},
    )


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    """A prepared dataset in the canonical layout (docs/ARCHITECTURE.md), 240 digits."""
    datasets = pytest.importorskip("datasets")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images[:240] * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target[:240]
    features = datasets.Features(
        {
            "input": datasets.Array3D(shape=(8, 8, 1), dtype="uint8"),
            "label": datasets.ClassLabel(names=[str(n) for n in range(10)]),
        }
    )
    bounds = {"train": (0, 160), "validation": (160, 200), "test": (200, 240)}
    dsdict = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict({"input": pixels[a:b], "label": labels[a:b]}, features=features)
            for name, (a, b) in bounds.items()
        }
    )
    path = tmp_path_factory.mktemp("data") / "tiny_digits"
    dsdict.save_to_disk(str(path))
    write_json(
        path / "metahpo.json",
        {
            "dataset": "tiny_digits", "source": "digits", "modality": "image", "input_column": "image",
            "label_column": "target", "num_classes": 10, "label_names": [str(n) for n in range(10)],
            "input_shape": [8, 8, 1], "split_sizes": {k: b - a for k, (a, b) in bounds.items()}, "carved": [],
        },
    )  # fmt: skip
    return path


@pytest.fixture
def recommendations(tmp_path):
    path = tmp_path / "recommendations.json"
    write_json(path, {"tiny_digits-mlp": {"method": "surrogate", "config": CONFIG, "predicted_score": 0.9}})
    return path


@pytest.mark.slow  # the stage end to end, 3 epochs: ~16 s with its data
def test_train_recommended_end_to_end(tiny_digits, recommendations, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from metahpo.data.prepare import load_prepared
    from metahpo.models import FAMILIES

    monkeypatch.chdir(tmp_path)  # dvclive must not write outside its folder
    params = make_params(epochs=3)
    out_dir = tmp_path / "train" / "tiny_digits-mlp"
    metrics = train_recommended("tiny_digits-mlp", params, tiny_digits, recommendations, out_dir)

    assert read_json(out_dir / "metrics.json") == metrics
    assert metrics["config"] == CONFIG and metrics["method"] == "surrogate" and metrics["state"] == "ok"
    assert metrics["epochs_run"] == 3 and metrics["threshold"] == 0.9 and metrics["device"] == "cpu"
    assert metrics["metric"] == "accuracy" and 0.3 < metrics["test_metric"] <= 1.0
    assert set(metrics["test_metrics"]) >= {"accuracy", "macro_f1", "macro_precision", "macro_recall"}
    # classification readers keep test_accuracy / test_macro_f1: the same numbers as test_metrics'
    assert metrics["test_accuracy"] == metrics["test_metric"] == metrics["test_metrics"]["accuracy"]
    assert metrics["test_macro_f1"] == metrics["test_metrics"]["macro_f1"] and 0 < metrics["test_macro_f1"] <= 1.0
    assert metrics["best_val_metric"] >= metrics["val_metric"]
    assert 1 <= metrics["epochs_to_convergence"] <= 3
    assert 0 < metrics["seconds_to_convergence"] <= metrics["seconds"]

    # the weights load into a freshly built model of the same config
    family = FAMILIES.get("mlp")
    data = family.prepare(*load_prepared(tiny_digits), family.options({}))
    fresh = family.build(CONFIG, data, family.options({}))
    state = load_file(str(out_dir / "model.safetensors"))
    fresh.load_state_dict(state)
    assert set(state) == set(fresh.state_dict())

    # dvclive: one line per epoch per metric, no dvc.yaml, nothing outside out_dir
    for name in ("train_loss", "val_loss", "val_metric", "seconds"):
        lines = (out_dir / "dvclive" / "plots" / "metrics" / f"{name}.tsv").read_text().strip().splitlines()
        assert len(lines) == 1 + 3, name
    assert (out_dir / "dvclive" / "metrics.json").is_file()
    assert not list(tmp_path.rglob("dvc.yaml"))
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["tiny_digits-mlp"]


def test_interrupted_run_leaves_no_folder(tiny_digits, recommendations, tmp_path, monkeypatch):
    import metahpo.training

    def interrupted(*args, on_epoch, **kwargs):
        on_epoch(1, {"train_loss": 1.0, "val_loss": 1.0, "val_metric": 0.5, "seconds": 0.1})
        raise KeyboardInterrupt

    monkeypatch.setattr(metahpo.training, "train_model", interrupted)
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "train" / "tiny_digits-mlp"
    with pytest.raises(KeyboardInterrupt):
        train_recommended("tiny_digits-mlp", make_params(), tiny_digits, recommendations, out_dir)
    assert not out_dir.exists() and list((tmp_path / "train").iterdir()) == []


def test_diverged_run_is_recorded_not_a_crash(tiny_digits, recommendations, tmp_path, monkeypatch):
    import metahpo.training
    from safetensors import safe_open

    def diverged(*args, **kwargs):
        return metahpo.training.TrainResult(state="diverged", message="training loss became nan", epochs_run=1)

    monkeypatch.setattr(metahpo.training, "train_model", diverged)
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "train" / "tiny_digits-mlp"
    metrics = train_recommended("tiny_digits-mlp", make_params(), tiny_digits, recommendations, out_dir)
    assert metrics["state"] == "diverged" and metrics["message"] == "training loss became nan"
    assert json.loads((out_dir / "metrics.json").read_text())["state"] == "diverged"
    with safe_open(str(out_dir / "model.safetensors"), "pt") as weights:
        assert list(weights.keys()) == []
        assert weights.metadata() == {"state": "diverged", "message": "training loss became nan"}


def test_missing_recommendation_is_a_clear_error(tiny_digits, tmp_path):
    path = tmp_path / "recommendations.json"
    write_json(path, {})
    with pytest.raises(MetahpoError, match="no recommendation for task 'tiny_digits-mlp'"):
        train_recommended("tiny_digits-mlp", make_params(), tiny_digits, path, tmp_path / "out")
    with pytest.raises(MetahpoError, match="unknown task 'nope'"):
        train_recommended("nope", make_params(), tiny_digits, path, tmp_path / "out")
