"""The tune stage: real trainings on tiny digits, strategy next to baseline, prior from sibling sweeps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import metahpo.data.prepare
import metahpo.stages.tune
from metahpo.config import Params
from metahpo.hpo.strategies.zero_shot import prior_scores
from metahpo.search_space import grid_configs
from metahpo.stages.tune import TUNE_COLUMNS, run_tune, target_pool
from test_benchmark_stage import fake_sweep
from test_models_vision_tabular import canonical_digits, one_torch_thread  # noqa: F401 (autouse)

MLP_SPACE = {
    "lr": {"values": [0.01, 0.1], "sample": "loguniform"},
    "batch_size": {"values": [64]},
    "hidden": {"values": [16, 32]},
    "dropout": {"values": [0.1], "sample": "uniform"},
}
CNN_SPACE = {
    "lr": {"values": [0.01, 0.1], "sample": "loguniform"},
    "batch_size": {"values": [64]},
    "filters": {"values": [4]},
    "dropout": {"values": [0.1], "sample": "uniform"},
}
TRIALS = 3


def tune_params() -> Params:
    """digits-mlp has a sibling mlp task (the prior); digits-cnn is alone in its family."""
    family = lambda space: {"space": space, "default": {k: v["values"][0] for k, v in space.items()}}  # noqa: E731
    return Params(
        seed=0,
        device="cpu",
        datasets={"digits": {"source": "digits"}, "digits_b": {"source": "digits", "max_train": 200}},
        tasks={
            "digits-mlp": {"dataset": "digits", "family": "mlp"},
            "digits_b-mlp": {"dataset": "digits_b", "family": "mlp"},
            "digits-cnn": {"dataset": "digits", "family": "cnn"},
        },
        sweep={"epochs": 1},
        families={"mlp": family(MLP_SPACE), "cnn": family(CNN_SPACE)},
        tune={"strategy": "transfer_bo", "baseline": "random", "trials": TRIALS},
    )


@pytest.fixture
def stage_dirs(tmp_path, monkeypatch):
    small = canonical_digits(max_train=150)
    monkeypatch.setattr(metahpo.data.prepare, "load_prepared", lambda path: small)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "metafeatures").mkdir()
    prior = fake_sweep("digits_b-mlp", MLP_SPACE, seed=3)
    prior.to_parquet(tmp_path / "sweep" / "digits_b-mlp.parquet")
    for i, dataset in enumerate(["digits", "digits_b"]):
        features = {"n_rows": 150.0 + 50 * i, "n_classes": 10.0 + i}
        (tmp_path / "metafeatures" / f"{dataset}.json").write_text(json.dumps({"features": features}))
    return tmp_path, prior


def tune(task: str, root, **kwargs) -> pd.DataFrame:
    return run_tune(task, tune_params(), root / "data", root / "sweep", root / "metafeatures",
                    root / "tune" / f"{task}.parquet", progress=False, **kwargs)  # fmt: skip


def test_tune_trains_k_trials_per_strategy_with_the_prior(stage_dirs):
    root, prior = stage_dirs
    table = tune("digits-mlp", root)

    assert tuple(table.columns) == TUNE_COLUMNS
    assert table.equals(pd.read_parquet(root / "tune" / "digits-mlp.parquet"))
    assert not (root / "tune" / "digits-mlp.partial.jsonl").exists()
    assert table.groupby("strategy")["trial"].apply(list).to_dict() == {
        "transfer_bo": [1, 2, 3], "random": [1, 2, 3],
    }  # fmt: skip
    assert (table["state"] == "ok").all() and table["val_metric"].between(0, 1).all()
    assert table["test_metric"].between(0, 1).all()
    for _, run in table.groupby("strategy"):
        assert run["best_val_metric"].is_monotonic_increasing
        assert run["best_val_metric"].iloc[-1] == run["val_metric"].max()
        assert np.allclose(run["cumulative_seconds"], run["seconds"].cumsum())
        assert run["config"].is_unique  # no configuration trained twice
    assert (table["note"] == "").all()
    assert (table["epochs"] == 1).all()  # sweep.epochs

    # the prior is used: transfer_bo's warm start is the meta-model's top configuration, and the
    # meta-model learned the prior task's ranking (its top pick is one of the prior's best few)
    target, prior_tasks, configs = target_pool(tune_params(), "digits-mlp", root / "sweep", root / "metafeatures")
    top = configs[int(np.argmax(prior_scores(target, prior_tasks)))]
    first = json.loads(table.loc[(table["strategy"] == "transfer_bo") & (table["trial"] == 1), "config"].item())
    assert first == pytest.approx(top)
    prior_ranks = prior["val_metric"].rank(ascending=False, method="min")
    top_row = (prior[[f"hp.{n}" for n in MLP_SPACE]] == [top[n] for n in MLP_SPACE]).all(axis=1)
    assert prior_ranks[top_row].min() <= 3


def test_target_pool_shares_the_prior_encoding(stage_dirs):
    root, _ = stage_dirs
    params = tune_params()
    target, prior, configs = target_pool(params, "digits-mlp", root / "sweep", root / "metafeatures")
    assert configs == grid_configs(params.families["mlp"].space)
    assert [t.name for t in prior] == ["digits_b-mlp"]
    assert target.y is None and target.meta_features is not None
    assert np.allclose(target.X, prior[0].X)  # the same grid, encoded alike
    assert target.n_epochs == params.sweep.epochs


def test_single_task_family_runs_without_a_prior_and_says_so(stage_dirs):
    root, _ = stage_dirs
    table = tune("digits-cnn", root)
    assert len(table) == 2 * 2  # tune.trials (3) capped at the pool: 2 lr x 1 x 1 x 1
    notes = table.groupby("strategy")["note"].first()
    assert "no other task" in notes["transfer_bo"] and "space-filling initial design" in notes["transfer_bo"]
    assert notes["random"] == ""


def test_an_interrupted_tune_trains_only_the_missing_trials(stage_dirs, monkeypatch):
    root, _ = stage_dirs
    train_model = metahpo.stages.tune.train_model
    calls = []

    def interrupted_after_four(*args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(kwargs["seed"])
        return train_model(*args, **kwargs)

    monkeypatch.setattr(metahpo.stages.tune, "train_model", interrupted_after_four)
    with pytest.raises(KeyboardInterrupt):
        tune("digits-mlp", root)
    assert len((root / "tune" / "digits-mlp.partial.jsonl").read_text().splitlines()) == 4

    calls.clear()
    monkeypatch.setattr(metahpo.stages.tune, "train_model", lambda *a, **k: (calls.append(k["seed"]), train_model(*a, **k))[1])
    resumed = tune("digits-mlp", root)
    assert len(calls) == 2 * TRIALS - 4
    assert len(resumed) == 2 * TRIALS
