"""Meta-dataset validation (the schema of docs/META_DATASET.md) and the export of the pipeline's sweeps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from metahpo.errors import MetahpoError
from metahpo.hpo import metadataset
from metahpo.hpo.base import Query
from metahpo.hpo.replay import answer, regret_scale
from metahpo.hpo.synthetic import make_synthetic


def small_table() -> pd.DataFrame:
    """Two tasks on the same two-hyperparameter space; lr spans three decades, width one."""
    return pd.DataFrame(
        {
            "task": ["a", "a", "a", "b", "b", "b"],
            "hp.lr": [0.001, 0.01, 1.0, 0.001, 0.01, 1.0],
            "hp.width": [16, 32, 64, 16, 32, 64],
            "objective": [0.5, 0.7, 0.6, 0.2, 0.9, 0.4],
        }
    )


@pytest.mark.parametrize("column", ["task", "objective"])
def test_missing_required_column_is_named(column):
    with pytest.raises(MetahpoError, match=rf"missing required column.*'{column}'"):
        metadataset.from_frame(small_table().drop(columns=[column]))


def test_non_numeric_objective_is_named():
    table = small_table().assign(objective=["0.5", "0.7", "x", "0.2", "0.9", "0.4"])
    with pytest.raises(MetahpoError, match=r"objective must be numeric"):
        metadataset.from_frame(table)


def test_non_numeric_hyperparameter_is_named():
    table = small_table().assign(**{"hp.width": ["s", "m", "l", "s", "m", "l"]})
    with pytest.raises(MetahpoError, match=r"hp\.width must be numeric"):
        metadataset.from_frame(table)


def test_different_search_spaces_name_the_columns():
    table = small_table().assign(**{"hp.dropout": [0.1, 0.2, 0.3, np.nan, np.nan, np.nan]})
    with pytest.raises(MetahpoError, match=r"different search spaces.*'a': \['hp\.lr', 'hp\.width', 'hp\.dropout'\]"):
        metadataset.from_frame(table)


def test_meta_features_must_cover_every_task():
    mf = pd.DataFrame({"task": ["a"], "mf.size": [1.0]})
    with pytest.raises(MetahpoError, match=r"meta-features missing for task\(s\) \['b'\]"):
        metadataset.from_frame(small_table(), meta_features=mf)


def test_missing_file_is_a_metahpo_error(tmp_path):
    with pytest.raises(MetahpoError, match="not found"):
        metadataset.read(tmp_path / "absent.parquet")


def test_nan_objective_is_kept_and_never_the_best():
    table = small_table()
    table.loc[4, "objective"] = math.nan  # task b's best row fails
    data = metadataset.from_frame(table)
    b = data.tasks["b"]
    assert len(b) == 3 and math.isnan(b.y[1])  # kept as a failed trial
    assert regret_scale(b) == (0.4, 0.2)  # the best and worst come from the finite rows


def test_min_direction_is_negated_and_log_encoding_follows_the_two_decade_rule():
    data = metadataset.from_frame(small_table(), direction="min")
    np.testing.assert_allclose(data.tasks["a"].y, [-0.5, -0.7, -0.6])
    assert data.log_scale == {"hp.lr": True, "hp.width": False}  # 1000x vs 4x
    np.testing.assert_allclose(data.tasks["a"].X[:, 0], [0, 1 / 3, 1])  # log10: -3, -2, 0
    np.testing.assert_allclose(data.tasks["a"].X[:, 1], [0, 1 / 3, 1])  # linear: 16, 32, 64


def test_from_sweeps_exports_a_sweep_shaped_table(tmp_path):
    sweep = pd.DataFrame(
        {
            "task": ["digits-mlp"] * 3, "dataset": ["digits"] * 3, "family": ["mlp"] * 3,
            "trial_id": ["grid-0000", "grid-0001", "random-0000"], "search": ["grid", "grid", "random"],
            "seed": [0, 0, 0], "hp.lr": [0.001, 0.1, 0.01], "hp.hidden": [64, 128, 96],
            "state": ["ok", "diverged", "ok"], "val_metric": [0.8, math.nan, 0.9],
            "curve_val_metric": [[0.5, 0.8], [0.3], [0.6, 0.9]], "seconds": [2.0, 0.5, 3.0],
        }
    )  # fmt: skip
    table, mf = metadataset.from_sweeps([sweep], {"digits-mlp": {"n_rows": 1797, "landmark_stump": None}})
    assert list(table.columns) == ["task", "hp.lr", "hp.hidden", "objective", "cost", "curve"]
    assert math.isnan(table["objective"][1]) and table["objective"][2] == 0.9
    assert table["curve"][0] == [0.5, 0.8] and table["cost"].tolist() == [2.0, 0.5, 3.0]
    assert mf.columns.tolist() == ["task", "mf.n_rows", "mf.landmark_stump"] and math.isnan(mf["mf.landmark_stump"][0])
    # the export round-trips through Parquet and validates; a partial evaluation reads the curve
    table.to_parquet(tmp_path / "meta.parquet")
    data = metadataset.read(tmp_path / "meta.parquet")
    task = data.tasks["digits-mlp"]
    assert task.n_epochs == 2
    assert answer(task, Query(2, epochs=1)) == (0.6, 1.5, False)
    assert answer(task, Query(2)) == (0.9, 3.0, True)


def test_synthetic_meta_dataset_has_the_documented_schema_and_structure():
    table, mf = make_synthetic(n_tasks=3, n_configs=100, seed=1, n_epochs=4, failure_rate=0.1)
    assert {"task", "hp.lr", "hp.width", "hp.dropout", "objective", "cost", "curve"} <= set(table.columns)
    assert mf.columns.tolist() == ["task", "mf.m", "mf.noise"]
    data = metadataset.from_frame(table, meta_features=mf)
    assert data.log_scale == {"hp.lr": True, "hp.width": True, "hp.dropout": False}
    assert all(np.isnan(t.y).any() for t in data.tasks.values())  # failed rows kept
    finite = table.dropna(subset=["objective"])
    assert all(c[-1] == pytest.approx(o) for c, o in zip(finite["curve"], finite["objective"]))
    # the optimum moves with m: the lowest-m task's best lr is below the highest-m task's
    best_lr = finite.loc[finite.groupby("task")["objective"].idxmax()].set_index("task")["hp.lr"]
    order = mf.sort_values("mf.m")["task"]
    assert best_lr[order.iloc[0]] < best_lr[order.iloc[-1]]
    # seeded: the same call gives the same table
    again, _ = make_synthetic(n_tasks=3, n_configs=100, seed=1, n_epochs=4, failure_rate=0.1)
    pd.testing.assert_frame_equal(table, again)
