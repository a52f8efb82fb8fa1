"""Meta-dataset validation (the schema of docs/META_DATASET.md) and the export of the pipeline's sweeps."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from metahpo.errors import MetahpoError
from metahpo.hpo import metadataset
from metahpo.hpo.base import Query
from metahpo.hpo.replay import answer, regret_scale
from metahpo.hpo.synthetic import ACTIVATIONS, activation_effect, make_synthetic, order_encoded
from metahpo.meta.candidates import CandidateGrid


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


@pytest.mark.parametrize("values", [["s", 2, "l"], ["s", True, "l"], [1.5, False, 3.0]],
                         ids=["numbers and strings", "strings and booleans", "numbers and booleans"])
def test_a_hyperparameter_column_mixing_value_types_is_refused_naming_it(values):
    table = small_table().assign(**{"hp.width": pd.Series(values * 2, dtype=object)})
    with pytest.raises(MetahpoError, match=r"hp\.width mixes value types .*write every value of hp\.width as one type"):
        metadataset.from_frame(table)


def test_a_column_holding_something_else_is_refused_naming_it():
    table = small_table().assign(**{"hp.width": pd.Series([[1], [2], [3]] * 2, dtype=object)})
    with pytest.raises(MetahpoError, match=r"hp\.width mixes value types \(list\)"):
        metadataset.from_frame(table)


def categorical_table() -> pd.DataFrame:
    """small_table with a string and a boolean hyperparameter; the categories deliberately unsorted."""
    return small_table().assign(**{"hp.act": ["tanh", "relu", "elu", "relu", "tanh", "elu"],
                                   "hp.norm": [True, False, True, False, False, True]})  # fmt: skip


def test_categorical_columns_are_one_hot_in_sorted_order_and_raw_keeps_the_values(tmp_path):
    table = categorical_table()
    table.to_parquet(tmp_path / "meta.parquet")
    data = metadataset.read(tmp_path / "meta.parquet")
    encoding = data.encoding
    assert encoding.categories == ((), (), ("elu", "relu", "tanh"), (False, True))
    assert encoding.columns == ("hp.lr", "hp.width", "hp.act=elu", "hp.act=relu", "hp.act=tanh",
                                "hp.norm=False", "hp.norm=True")  # fmt: skip
    assert data.log_scale == {"hp.lr": True, "hp.width": False, "hp.act": False, "hp.norm": False}
    a = data.tasks["a"]
    assert a.X.shape == (3, 7)
    np.testing.assert_array_equal(a.X[:, 2:], [[0, 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1]])
    assert a.raw["hp.act"].tolist() == ["tanh", "relu", "elu"]
    assert a.raw["hp.norm"].tolist() == [True, False, True]
    np.testing.assert_allclose(a.X[:, 0], [0, 1 / 3, 1])  # numeric columns as before
    with pytest.raises(MetahpoError, match=r"hp\.act is declared log-scaled but holds categories"):
        metadataset.from_frame(table, log_scale={"hp.act": True})


def test_encoding_with_categories_round_trips_through_json_and_decodes():
    encoding = metadataset.from_frame(categorical_table()).encoding
    again = metadataset.Encoding.from_json(json.loads(json.dumps(encoding.to_json())))
    assert again == encoding
    assert again.categories[3] == (False, True) and isinstance(again.categories[3][0], bool)
    new = pd.DataFrame({"hp.lr": [0.1, 1.0], "hp.width": [48, 16], "hp.act": ["relu", "gelu"],
                        "hp.norm": [False, True]})  # fmt: skip
    X = again.encode(new)
    np.testing.assert_allclose(X, [[2 / 3, 2 / 3, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0, 1]])  # gelu: never seen, all 0
    decoded = again.decode(X[:1])
    np.testing.assert_allclose(decoded[["hp.lr", "hp.width"]].to_numpy(dtype=float), [[0.1, 48]])
    assert decoded["hp.act"].tolist() == ["relu"] and decoded["hp.norm"].tolist() == [False]
    # an encoding persisted before categories existed reads as all numeric
    old = {k: v for k, v in metadataset.from_frame(small_table()).encoding.to_json().items() if k != "categories"}
    assert metadataset.Encoding.from_json(old).categories == ((), ())


def test_a_candidate_grid_with_categories_finds_its_rows_and_encodes_them():
    data = metadataset.from_frame(categorical_table())
    configs = [{"lr": 0.01, "width": 32, "act": "relu", "norm": False},
               {"lr": 1.0, "width": 64, "act": "elu", "norm": True},
               {"lr": 1.0, "width": 64, "act": "tanh", "norm": True}]  # fmt: skip
    grid = CandidateGrid.build("mlp", configs, configs[0], data.encoding)
    assert grid.rows_in(data.tasks["a"]).tolist() == [1, 2, -1]
    assert grid.default_index == 0
    np.testing.assert_allclose(grid.pool("new").X, data.encoding.encode(grid.frame()))
    np.testing.assert_allclose(grid.pool("new").X[:2], data.tasks["a"].X[1:])
    again = CandidateGrid.from_json(json.loads(json.dumps(grid.to_json())))
    assert again.rows_in(data.tasks["b"]).tolist() == [-1, 2, -1]


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


def test_categorical_synthetic_has_a_best_activation_between_two_bad_ones_that_moves_with_m():
    table, mf = make_synthetic(n_tasks=4, n_configs=60, seed=2, categorical=True)
    assert len(table) == 4 * 60 and table["hp.activation"].value_counts().tolist() == [40] * 6
    best = table.loc[table.groupby("task")["objective"].idxmax()].set_index("task")["hp.activation"]
    m = mf.set_index("task")["mf.m"]
    assert {best[t] for t in m.index} == {"relu", "swish"}  # which one depends on m
    assert all(best[t] == ("relu" if m[t] < 0 else "swish") for t in m.index)
    for value in (-0.5, 0.5):  # in integer order the best sits between two bad neighbours
        effect = activation_effect(value)
        code = int(np.argmax(effect))
        assert 0 < code < len(ACTIVATIONS) - 1 and effect[code - 1] < effect[code] / 5 > effect[code + 1]
    ordinal = order_encoded(table)
    assert sorted(ordinal["hp.activation"].unique()) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert metadataset.from_frame(ordinal).encoding.width == 4  # one ordered column, where one-hot has six
    assert metadataset.from_frame(table).encoding.width == 9


def test_declared_log_flags_win_and_the_span_rule_decides_the_rest():
    table = small_table().assign(**{"hp.lr": [0.001, 0.003, 0.01] * 2, "hp.width": [8, 64, 1024] * 2})
    assert metadataset.from_frame(table).log_scale == {"hp.lr": False, "hp.width": True}  # 10x, 128x
    declared = metadataset.from_frame(table, log_scale={"hp.lr": True, "hp.width": False})
    assert declared.log_scale == {"hp.lr": True, "hp.width": False}
    np.testing.assert_allclose(declared.tasks["a"].X[:, 0], (np.log10([0.001, 0.003, 0.01]) + 3))
    np.testing.assert_allclose(declared.tasks["a"].X[:, 1], [0, 56 / 1016, 1])
    with pytest.raises(MetahpoError, match=r"hp\.lr is declared log-scaled but has values <= 0"):
        metadataset.from_frame(table.assign(**{"hp.lr": [0.0, 0.1, 0.2] * 2}), log_scale={"hp.lr": True})
    with pytest.raises(MetahpoError, match=r"log_scale names columns the table does not have: \['hp\.depth'\]"):
        metadataset.from_frame(table, log_scale={"hp.depth": True})


def test_encoding_round_trips_through_json_and_encodes_new_configurations():
    data = metadataset.from_frame(small_table())
    again = metadataset.Encoding.from_json(data.encoding.to_json())
    assert again == data.encoding
    new = pd.DataFrame({"hp.lr": [0.1], "hp.width": [48]})
    np.testing.assert_allclose(again.encode(new), [[2 / 3, 2 / 3]])  # log10 -1 of -3..0; 48 of 16..64


def test_scaler_imputes_medians_standardises_and_drops_what_carries_nothing():
    rows = [
        {"size": 1.0, "same": 0.1, "none": None, "gappy": 2.0},
        {"size": 2.0, "same": 0.1, "none": None, "gappy": None},
        {"size": 6.0, "same": 0.1, "none": None, "gappy": 4.0},
    ]
    scaler = metadataset.MetaFeatureScaler.fit(rows)
    assert scaler.names == ("size", "gappy")  # "same" is constant (0.1 three times), "none" all missing
    np.testing.assert_allclose(scaler.medians, [2.0, 3.0])
    np.testing.assert_allclose(scaler.means, [3.0, 3.0])  # gappy imputed to 2, 3, 4
    vector = scaler.transform({"size": 3.0, "gappy": None, "unknown": 9.0})
    np.testing.assert_allclose(vector, [0.0, 0.0])  # a missing value is the training median
    again = metadataset.MetaFeatureScaler.from_json(scaler.to_json())
    np.testing.assert_array_equal(again.transform({"size": 6.0, "gappy": 4.0}), scaler.transform({"size": 6.0, "gappy": 4.0}))


def test_a_fold_standardises_the_held_out_task_with_the_prior_tasks_scaler():
    table = pd.concat([small_table(), small_table().replace({"a": "c"}).query("task == 'c'")], ignore_index=True)
    mf = pd.DataFrame({"task": ["a", "b", "c"], "mf.size": [1.0, 3.0, 11.0], "mf.gap": [1.0, np.nan, 5.0]})
    data = metadataset.from_frame(table, meta_features=mf)
    assert data.meta_feature_names == ["size", "gap"]
    target, prior = data.fold("c")
    assert [t.name for t in prior] == ["a", "b"] and target.y is None and target.test is None
    # the scaler of a and b alone: size mean 2, std 1; gap: b imputed to a's 1 -> constant, dropped
    assert data.without("c").meta_feature_names == ["size"]
    np.testing.assert_allclose(target.meta_features, [9.0])
    np.testing.assert_allclose([p.meta_features[0] for p in prior], [-1.0, 1.0])
    assert prior[0].X is data.tasks["a"].X and prior[0].y is data.tasks["a"].y  # views share the arrays
    assert data.fold("c")[1][0] is prior[0]  # and a fold is built once


def test_from_sweeps_keeps_test_scores_and_can_take_the_grid_rows_alone():
    sweep = pd.DataFrame(
        {
            "task": ["t"] * 3, "search": ["grid", "grid", "random"], "hp.lr": [0.001, 0.1, 0.01],
            "state": ["ok", "diverged", "ok"], "val_metric": [0.8, 0.1, 0.9], "test_metric": [0.7, 0.05, 0.85],
            "metric": ["f1"] * 3, "curve_val_metric": [[0.8], [0.1], [0.9]], "seconds": [2.0, 0.5, 3.0],
        }
    )  # fmt: skip
    table, _ = metadataset.from_sweeps([sweep], search="grid")
    assert len(table) == 2 and table["test_objective"].tolist()[0] == 0.7
    assert math.isnan(table["objective"][1]) and math.isnan(table["test_objective"][1])  # not ok: no scores
    task = metadataset.from_frame(table).tasks["t"]
    assert task.metric == "f1" and task.test[0] == 0.7
