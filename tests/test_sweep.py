"""Sweeps: grid and random configs, failure states that do not stop a sweep, determinism, resume."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import yaml

import metahpo.data.prepare
import metahpo.stages.sweep
from metahpo.config import HyperparameterSpace, Params
from metahpo.errors import MetahpoError
from metahpo.models import FAMILIES
from metahpo.models.mlp import MLPFamily
from metahpo.search_space import grid_configs, random_configs
from metahpo.stages.sweep import run_sweep
from metahpo.trial_log import partial_path
from test_models_vision_tabular import canonical_digits, canonical_tabular, one_torch_thread  # noqa: F401 (autouse)

COLUMNS_BEFORE_HP = ["task", "dataset", "family", "trial_id", "search", "seed"]
COLUMNS_AFTER_HP = [
    "config", "state", "message", "epochs_run", "curve_train_loss", "curve_val_loss", "curve_val_metric",
    "curve_seconds", "metric", "val_metric", "test_metric", "test_metrics", "test_accuracy", "test_macro_f1",
    "seconds", "device",
]  # fmt: skip
TIMING_COLUMNS = ["seconds", "curve_seconds"]


@pytest.fixture(scope="module")
def small_digits():
    return canonical_digits(max_train=300)


@pytest.fixture
def digits_on_disk(monkeypatch, small_digits):
    """metahpo.data.prepare.load_prepared returns the small digits dataset, whatever the folder."""
    monkeypatch.setattr(metahpo.data.prepare, "load_prepared", lambda path: small_digits)


def space_of(family: str, repo_root) -> dict[str, HyperparameterSpace]:
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())["families"][family]["space"]
    return {name: HyperparameterSpace(**spec) for name, spec in raw.items()}


def sweep_params(family: str = "mlp", space: dict | None = None, random_trials: int = 2, seed: int = 0) -> Params:
    """A tiny, fast sweep of one task over digits."""
    space = space or {
        "lr": {"values": [0.01], "sample": "loguniform"},
        "batch_size": {"values": [64]},
        "hidden": {"values": [16, 32]},
        "dropout": {"values": [0.1, 0.3], "sample": "uniform"},
    }
    default = {name: spec["values"][0] for name, spec in space.items()}
    return Params(
        seed=seed,
        device="cpu",
        datasets={"digits": {"source": "digits"}},
        tasks={"digits-fam": {"dataset": "digits", "family": family}},
        sweep={"grid": True, "random_trials": random_trials, "epochs": 2},
        families={family: {"space": space, "default": default}},
    )


def test_grid_configs_cover_the_cnn_space_in_seed_order(repo_root):
    configs = grid_configs(space_of("cnn", repo_root))
    assert len(configs) == 54
    assert configs[0] == {"lr": 0.001, "batch_size": 32, "filters": 32, "dropout": 0.2}
    assert configs[1] == {"lr": 0.001, "batch_size": 32, "filters": 32, "dropout": 0.5}
    assert configs[2] == {"lr": 0.001, "batch_size": 32, "filters": 64, "dropout": 0.2}
    assert configs[-1] == {"lr": 0.1, "batch_size": 128, "filters": 128, "dropout": 0.5}
    assert len({json.dumps(c) for c in configs}) == 54


def test_random_configs_stay_in_bounds_and_repeat_per_seed(repo_root):
    space = space_of("cnn", repo_root)
    configs = random_configs(space, 500, seed=3)
    assert configs == random_configs(space, 500, seed=3)
    assert configs != random_configs(space, 500, seed=4)
    lrs = [c["lr"] for c in configs]
    assert all(0.001 <= lr <= 0.1 for lr in lrs)
    # log-uniform: about half the draws fall below the geometric middle 0.01
    assert 0.4 < sum(lr < 0.01 for lr in lrs) / len(lrs) < 0.6
    assert {c["batch_size"] for c in configs} == {32, 64, 128}
    assert all(type(c["batch_size"]) is int and type(c["filters"]) is int for c in configs)
    dropouts = [c["dropout"] for c in configs]
    assert all(0.2 <= d <= 0.5 for d in dropouts) and len(set(dropouts)) == 500


def test_random_configs_keep_integer_ranges_integer():
    space = {"batch_size": HyperparameterSpace(values=[16, 256], sample="loguniform"),
             "layers": HyperparameterSpace(values=[1, 4], sample="uniform")}  # fmt: skip
    configs = random_configs(space, 200, seed=0)
    assert all(type(v) is int for c in configs for v in c.values())
    assert all(16 <= c["batch_size"] <= 256 and 1 <= c["layers"] <= 4 for c in configs)
    assert len({c["batch_size"] for c in configs}) > 20


def test_sweep_writes_the_table(tmp_path, digits_on_disk):
    out = tmp_path / "sweep" / "digits-fam.parquet"
    table = run_sweep("digits-fam", sweep_params(), tmp_path / "data", out, progress=False)
    hp_columns = ["hp.lr", "hp.batch_size", "hp.hidden", "hp.dropout"]
    assert list(table.columns) == COLUMNS_BEFORE_HP + hp_columns + COLUMNS_AFTER_HP
    assert list(table.trial_id) == ["grid-0000", "grid-0001", "grid-0002", "grid-0003", "random-0000", "random-0001"]
    assert list(table.search) == ["grid"] * 4 + ["random"] * 2
    assert table.seed.nunique() == 6
    assert (table.state == "ok").all() and (table.epochs_run == 2).all()
    assert (table.val_metric > 0.3).all()  # chance is 0.1; 300 rows, 2 epochs
    assert [json.loads(c) for c in table.config[:2]] == [
        {"lr": 0.01, "batch_size": 64, "hidden": 16, "dropout": 0.1},
        {"lr": 0.01, "batch_size": 64, "hidden": 16, "dropout": 0.3},
    ]
    assert table["hp.hidden"].tolist()[:4] == [16, 16, 32, 32]
    on_disk = pd.read_parquet(out)
    assert list(on_disk.columns) == list(table.columns) and len(on_disk) == 6
    assert list(on_disk.curve_val_metric[0]) == table.curve_val_metric[0]
    assert not partial_path(out).exists()


class FlakyFamily(MLPFamily):
    """hidden 8 gives NaN logits, hidden 16 runs out of memory, hidden 32 trains."""

    name = "flaky"

    def build(self, config, data, options):
        model = super().build(config, data, options)
        if config["hidden"] == 8:
            model.forward = lambda x: torch.full((len(x), data.num_classes), float("nan"))
        elif config["hidden"] == 16:
            model.forward = lambda x: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory"))
        return model


def test_diverged_and_oom_trials_do_not_stop_the_sweep(tmp_path, digits_on_disk, monkeypatch):
    monkeypatch.setitem(FAMILIES._entries, "flaky", FlakyFamily())
    space = {"lr": {"values": [0.01]}, "batch_size": {"values": [64]}, "hidden": {"values": [8, 16, 32]},
             "dropout": {"values": [0.1]}}  # fmt: skip
    table = run_sweep("digits-fam", sweep_params("flaky", space, random_trials=0), tmp_path, tmp_path / "t.parquet",
                      progress=False)  # fmt: skip
    assert list(table.state) == ["diverged", "oom", "ok"]
    assert "epoch 1" in table.message[0] and "out of memory" in table.message[1]
    for column in ("val_metric", "test_accuracy", "test_macro_f1"):
        assert table[column][:2].isna().all() and not math.isnan(table[column][2])
    assert table.val_metric[2] > 0.3


def test_same_seed_gives_the_same_table(tmp_path, digits_on_disk):
    tables = [
        run_sweep("digits-fam", sweep_params(seed=5), tmp_path, tmp_path / f"run{i}.parquet", progress=False)
        for i in range(2)
    ]
    pd.testing.assert_frame_equal(tables[0].drop(columns=TIMING_COLUMNS), tables[1].drop(columns=TIMING_COLUMNS))
    other = run_sweep("digits-fam", sweep_params(seed=6, random_trials=1), tmp_path, tmp_path / "o.parquet",
                      progress=False)  # fmt: skip
    assert list(other.seed) != list(tables[0].seed[: len(other)])


def test_interrupted_sweep_resumes_with_the_missing_trials(tmp_path, digits_on_disk, monkeypatch):
    out = tmp_path / "digits-fam.parquet"
    params = sweep_params()
    real_train = metahpo.stages.sweep.train_model
    trained: list[str] = []
    interrupt_after: list[int] = [3]  # trials trained before Ctrl-C; emptied for the resumed run

    def recording_train(family, data, config, **kwargs):
        if interrupt_after and len(trained) == interrupt_after[0]:
            raise KeyboardInterrupt
        trained.append(json.dumps(config))
        return real_train(family, data, config, **kwargs)

    monkeypatch.setattr(metahpo.stages.sweep, "train_model", recording_train)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("digits-fam", params, tmp_path, out, progress=False)
    assert not out.exists()
    assert len(partial_path(out).read_text().splitlines()) == 3
    # a kill while appending leaves a torn last line: it is dropped and its trial rerun
    with open(partial_path(out), "a") as handle:
        handle.write('{"task": "digits-fam", "trial_id": "grid-00')

    first_run = list(trained)
    trained.clear()
    interrupt_after.clear()
    resumed = run_sweep("digits-fam", params, tmp_path, out, progress=False)
    assert len(trained) == 3 and not set(trained) & set(first_run)
    assert list(resumed.trial_id) == ["grid-0000", "grid-0001", "grid-0002", "grid-0003", "random-0000", "random-0001"]
    assert not partial_path(out).exists()

    monkeypatch.setattr(metahpo.stages.sweep, "train_model", real_train)
    uninterrupted = run_sweep("digits-fam", params, tmp_path, tmp_path / "whole.parquet", progress=False)
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING_COLUMNS), uninterrupted.drop(columns=TIMING_COLUMNS))


def test_partial_rows_of_other_params_are_not_reused(tmp_path, digits_on_disk):
    out = tmp_path / "digits-fam.parquet"
    stale = {"trial_id": "grid-0000", "seed": 1, "config": json.dumps({"lr": 0.5}), "state": "ok", "val_metric": 1.0}
    partial_path(out).write_text(json.dumps(stale) + "\n")
    table = run_sweep("digits-fam", sweep_params(random_trials=0), tmp_path, out, progress=False)
    assert table.val_metric[0] < 1.0 and json.loads(table.config[0])["lr"] == 0.01


def test_family_must_accept_the_dataset_modality(tmp_path, monkeypatch):
    monkeypatch.setattr(metahpo.data.prepare, "load_prepared", lambda path: canonical_tabular())
    space = {"lr": {"values": [0.01]}, "batch_size": {"values": [8]}, "filters": {"values": [4]},
             "dropout": {"values": [0.1]}}  # fmt: skip
    with pytest.raises(MetahpoError, match=r"is classification on tabular data, but model family 'cnn' does classification on image"):
        run_sweep("digits-fam", sweep_params("cnn", space), tmp_path, tmp_path / "t.parquet", progress=False)


def test_sweep_reads_a_dataset_saved_in_the_contract_layout(tmp_path, small_digits):
    data, info = small_digits
    data.save_to_disk(str(tmp_path / "digits"))
    (tmp_path / "digits" / "metahpo.json").write_text(json.dumps(info))
    table = run_sweep("digits-fam", sweep_params(random_trials=0), tmp_path / "digits", tmp_path / "t.parquet",
                      progress=False)  # fmt: skip
    assert len(table) == 4 and (table.state == "ok").all()
