"""fit_meta on small synthetic sweeps with known structure: the best lr moves with a meta-feature."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.preprocessing import FunctionTransformer

from metahpo.config import Params
from metahpo.errors import MetahpoError
from metahpo.io import read_json, write_json
from metahpo.hpo import surrogate
from metahpo.hpo.metadataset import normalised_scores, pool_regret
from metahpo.search_space import grid_configs
from metahpo.hpo.sweep_tables import family_metadataset
from metahpo.meta import (
    CandidateGrid,
    FamilyMetaModel,
    greedy_portfolio,
    interleave_rankings,
    load_meta_model,
    recommend,
)
from metahpo.meta.loto import LOTO_COLUMNS, loto_rows
from metahpo.meta.persist import FORMAT_VERSION, load_surrogate, save_meta_models
from metahpo.meta.rankers import default_ranking, surrogate_regressor
from metahpo.stages.fit_meta import fit_meta

LRS = [0.001, 0.01, 0.1]
HIDDEN = [16, 32]
# task -> meta-feature "x": the task's best lr is 10 ** (x - 2); the "noise" feature is irrelevant
TASK_X = {"t0": -1.0, "t1": -0.9, "t2": 0.0, "t3": 0.1, "t4": 1.0, "t5": 0.9}
TASK_NOISE = {"t0": 0.2, "t1": 0.25, "t2": 0.5, "t3": 0.45, "t4": 0.8, "t5": 0.75, "solo": 0.5}


def make_params(tasks: dict[str, str], **meta) -> Params:
    space = {"lr": {"values": LRS, "sample": "loguniform"}, "hidden": {"values": HIDDEN}}
    # a made-up two-hyperparameter space under the mlp and cnn names: the registry checks are off
    return Params.model_validate(dict(
        seed=0,
        datasets={f"ds_{t}": {"source": "digits"} for t in tasks},
        tasks={t: {"dataset": f"ds_{t}", "family": family} for t, family in tasks.items()},
        families={
            "mlp": {"space": space, "default": {"lr": 0.001, "hidden": 16}},
            "cnn": {"space": space, "default": {"lr": 0.01, "hidden": 32}},
        },
        meta={"n_estimators": 20, "neighbors": 2, "portfolio_size": 2, "top_k": [1, 3], **meta},
    ), context={"registries": False})


def sweep_row(task: str, family: str, trial_id: str, lr: float, hidden: int, val: float, state="ok") -> dict:
    """A classification row: the primary metric is accuracy, test scores sit just below val."""
    ok = state == "ok"
    test = {"accuracy": val - 0.01, "macro_f1": val - 0.02} if ok else {}
    return {
        "task": task, "dataset": f"ds_{task}", "family": family, "trial_id": trial_id,
        "search": trial_id.split("-")[0], "seed": 0, "hp.lr": lr, "hp.hidden": hidden,
        "config": json.dumps({"lr": lr, "hidden": hidden}), "state": state, "message": "",
        "epochs_run": 2, "curve_train_loss": [1.0, 0.5], "curve_val_loss": [1.0, 0.6],
        "curve_val_metric": [val / 2, val], "curve_seconds": [0.5, 0.5],
        "metric": "accuracy", "val_metric": val if ok else math.nan,
        "test_metric": test.get("accuracy", math.nan), "test_metrics": json.dumps(test, sort_keys=True),
        "test_accuracy": test.get("accuracy", math.nan), "test_macro_f1": test.get("macro_f1", math.nan),
        "seconds": 1.0 + hidden / 16, "device": "cpu",
    }  # fmt: skip


def structured_score(x: float, lr: float, hidden: int) -> float:
    return 0.9 - 0.2 * (math.log10(lr) - (x - 2)) ** 2 + (0.01 if hidden == 32 else 0.0)


def write_task(sweep_dir, meta_dir, task, family, x, scores=None) -> None:
    """Grid rows from ``structured_score`` (or explicit ``scores`` in seed order), plus a random row."""
    rows = []
    for i, (lr, hidden) in enumerate(itertools.product(LRS, HIDDEN)):
        val = structured_score(x, lr, hidden) if scores is None else scores[i]
        state = "diverged" if val is None else "ok"
        rows.append(sweep_row(task, family, f"grid-{i:04d}", lr, hidden, val if val is not None else 0, state))
    # a random-search row with a perfect score must not count: candidates are grid rows only
    rows.append(sweep_row(task, family, "random-0000", 0.05, 16, 0.999))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(sweep_dir / f"{task}.parquet", index=False)
    write_json(
        meta_dir / f"ds_{task}.json",
        {
            "dataset": f"ds_{task}",
            "features": {"x": x, "noise": TASK_NOISE.get(task, 0.5), "token_length": None},
            "groups": {"simple": ["x", "noise", "token_length"]},
            "seconds": {"simple": 0.0},
        },
    )


def write_synthetic(base):
    sweep_dir, meta_dir = base / "sweep", base / "metafeatures"
    for task, x in TASK_X.items():
        write_task(sweep_dir, meta_dir, task, "mlp", x)
    write_task(sweep_dir, meta_dir, "solo", "cnn", 0.0)
    return make_params({t: "mlp" for t in TASK_X} | {"solo": "cnn"}), sweep_dir, meta_dir


def run_fit(params, sweep_dir, meta_dir, out_dir):
    summary = fit_meta(params, sweep_dir, meta_dir, out_dir)
    return summary, pd.read_parquet(out_dir / "loto.parquet"), read_json(out_dir / "recommendations.json")


@pytest.fixture
def synthetic(tmp_path):
    """Six mlp tasks (best lr = 10 ** (x - 2)) and a cnn family with a single task; free to modify."""
    return write_synthetic(tmp_path)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One fit_meta of the synthetic data with default meta params, shared read-only."""
    base = tmp_path_factory.mktemp("fitted")
    params, sweep_dir, meta_dir = write_synthetic(base)
    summary, loto, recommendations = run_fit(params, sweep_dir, meta_dir, base / "meta")
    return {
        "params": params, "sweep_dir": sweep_dir, "meta_dir": meta_dir, "out_dir": base / "meta",
        "summary": summary, "loto": loto, "recommendations": recommendations,
    }  # fmt: skip


def family_data(params, tasks, sweep_dir, meta_dir):
    """fit_meta's view of a family: its grid rows as a meta-dataset, and its candidate grid."""
    datasets = {task: params.task_dataset(task) for task in tasks}
    data = family_metadataset(datasets, params.families["mlp"].space, sweep_dir, meta_dir, search="grid",
                              require_metafeatures=True)  # fmt: skip
    spec = params.families["mlp"]
    return data, CandidateGrid.build("mlp", grid_configs(spec.space), spec.default, data.encoding)


def test_normalised_regret_hand_worked(tmp_path):
    # seed order: (0.001,16) (0.001,32) (0.01,16) (0.01,32) (0.1,16) (0.1,32); None = diverged
    scores = [0.5, 0.9, 0.7, None, 0.6, 0.8]
    write_task(tmp_path / "sweep", tmp_path / "mf", "t0", "mlp", 0.0, scores=scores)
    data, grid = family_data(make_params({"t0": "mlp"}), ["t0"], tmp_path / "sweep", tmp_path / "mf")
    task = data.tasks["t0"]
    assert len(task) == 6  # the grid rows only: the random row is not a candidate
    np.testing.assert_allclose(normalised_scores(task), [0.0, 1.0, 0.5, 0.0, 0.25, 0.75])
    np.testing.assert_allclose(pool_regret(task), [1.0, 0.0, 0.5, 1.0, 0.75, 0.25])  # diverged: the worst

    def row(indices, k):
        ranking = default_ranking(grid)
        ranking.indices = indices
        (only,) = loto_rows(task, grid, "x", ranking, [k], "")
        return only

    assert row([3, 4, 5], 3)["regret"] == pytest.approx(0.25)  # best of top-3 is 0.8: (0.9 - 0.8) / 0.4
    assert row([2], 1)["regret"] == pytest.approx(0.5)  # (0.9 - 0.7) / 0.4
    first = row([1], 1)
    assert first["regret"] == 0.0 and first["grid_runs"] == 6
    assert first["grid_seconds"] == pytest.approx(3 * 2.0 + 3 * 3.0)
    assert first["grid_best_val_metric"] == pytest.approx(0.9)


def test_a_candidate_the_task_never_ran_counts_as_its_worst(tmp_path):
    write_task(tmp_path / "sweep", tmp_path / "mf", "t0", "mlp", 0.0, scores=[0.5, 0.9, 0.7, 0.4, 0.6, 0.8])
    path = tmp_path / "sweep" / "t0.parquet"
    table = pd.read_parquet(path)
    table.drop(index=1).to_parquet(path, index=False)  # (0.001, 32), the best, was never run
    data, grid = family_data(make_params({"t0": "mlp"}), ["t0"], tmp_path / "sweep", tmp_path / "mf")
    np.testing.assert_array_equal(grid.rows_in(data.tasks["t0"]), [0, -1, 1, 2, 3, 4])
    ranking = default_ranking(grid)
    ranking.indices = [1, 5]
    (row,) = loto_rows(data.tasks["t0"], grid, "x", ranking, [1], "")
    assert row["regret"] == 1.0 and math.isnan(row["val_metric"]) and row["seconds"] == 0.0
    (row,) = loto_rows(data.tasks["t0"], grid, "x", ranking, [2], "")
    assert row["regret"] == 0.0 and row["seconds"] == pytest.approx(3.0)  # 0.8, now the best; 1 + 32/16 s


def test_equal_scores_have_zero_regret_and_a_failed_run_stays_the_worst(tmp_path):
    write_task(tmp_path / "sweep", tmp_path / "mf", "t0", "mlp", 0.0, scores=[0.7] * 5 + [None])
    data, _ = family_data(make_params({"t0": "mlp"}), ["t0"], tmp_path / "sweep", tmp_path / "mf")
    # the replay engine's rule: a failed run is never the best, whatever the spread of the others
    np.testing.assert_array_equal(pool_regret(data.tasks["t0"]), [0, 0, 0, 0, 0, 1])


def test_the_meta_dataset_reads_the_tables_primary_metric(tmp_path):
    """A QA-like table scores f1: the task data and the LOTO rows carry its name and its test_metric."""
    scores = [0.5, 0.9, 0.7, None, 0.6, 0.8]
    write_task(tmp_path / "sweep", tmp_path / "mf", "t0", "mlp", 0.0, scores=scores)
    path = tmp_path / "sweep" / "t0.parquet"
    table = pd.read_parquet(path)
    qa_scores = [
        {"exact": val - 0.1, "f1": val - 0.05} if state == "ok" else {}
        for val, state in zip(table.val_metric, table.state)
    ]
    table = table.assign(
        metric="f1",
        test_metric=[s.get("f1", math.nan) for s in qa_scores],
        test_metrics=[json.dumps(s, sort_keys=True) for s in qa_scores],
        test_accuracy=math.nan,
        test_macro_f1=math.nan,
    )
    table.to_parquet(path, index=False)
    params = make_params({"t0": "mlp"})
    data, grid = family_data(params, ["t0"], tmp_path / "sweep", tmp_path / "mf")
    task = data.tasks["t0"]
    assert task.metric == "f1"
    np.testing.assert_allclose(task.test, [0.45, 0.85, 0.65, np.nan, 0.55, 0.75])

    (row,) = loto_rows(task, grid, "default", default_ranking(grid), [1], "")
    assert row["metric"] == "f1" and set(row) == set(LOTO_COLUMNS)
    assert row["test_metric"] == pytest.approx(0.45)  # the default config is grid point 0
    assert (row["grid_best_val_metric"], row["grid_best_test_metric"]) == pytest.approx((0.9, 0.85))

    table.drop(columns="metric").to_parquet(path, index=False)  # written before task types
    data, grid = family_data(params, ["t0"], tmp_path / "sweep", tmp_path / "mf")
    (row,) = loto_rows(data.tasks["t0"], grid, "default", default_ranking(grid), [1], "")
    assert data.tasks["t0"].metric is None and row["metric"] == "accuracy"


def test_greedy_portfolio_hand_worked():
    normalised = np.array(
        [
            # c0   c1   c2   c3
            [1.0, 0.6, 0.0, 0.0],
            [0.0, 0.6, 1.0, 1.0],
            [0.0, 0.6, 1.0, 1.0],
        ]
    )
    # c2 (mean 2/3) beats c1 (0.6) and ties c3 -> the first, c2; then c0 lifts the mean to 1.0;
    # then nothing improves and the first unused candidate, c1, fills the last slot
    assert greedy_portfolio(normalised, 3) == [2, 0, 1]
    assert greedy_portfolio(normalised, 10) == [2, 0, 1, 3]


def test_interleave_rankings_dedupes_in_distance_order():
    assert interleave_rankings([[1, 2, 3], [1, 4, 2], [5]]) == [1, 5, 2, 4, 3]


def test_candidate_grid_is_seed_order_in_the_meta_datasets_encoding(tmp_path):
    write_task(tmp_path / "sweep", tmp_path / "mf", "t0", "mlp", 0.0)
    data, grid = family_data(make_params({"t0": "mlp"}), ["t0"], tmp_path / "sweep", tmp_path / "mf")
    assert grid.configs[:3] == ({"lr": 0.001, "hidden": 16}, {"lr": 0.001, "hidden": 32}, {"lr": 0.01, "hidden": 16})
    pool = grid.pool("new")
    np.testing.assert_allclose(pool.X[:, 0], [0, 0, 0.5, 0.5, 1, 1])  # lr: declared loguniform -> log10
    np.testing.assert_allclose(pool.X[:, 1], [0, 1] * 3)  # hidden: a choice, 2x -> linear
    np.testing.assert_array_equal(pool.X, data.tasks["t0"].X)  # the grid rows: the same encoding
    assert grid.default_index == 0


def test_fit_meta_writes_the_contract(fitted):
    params, summary, loto, recommendations = fitted["params"], fitted["summary"], fitted["loto"], fitted["recommendations"]
    out_dir = fitted["out_dir"]
    assert list(loto.columns) == list(LOTO_COLUMNS)
    assert len(loto) == 7 * 5 * 2  # tasks x methods x k
    assert set(loto["method"]) == {"surrogate", "nearest", "portfolio", "default", "safe"}
    assert (out_dir / "model/mlp.skops").is_file() and (out_dir / "model/cnn.skops").is_file()
    meta_model = read_json(out_dir / "model/meta_model.json")
    assert meta_model["format"] == FORMAT_VERSION == 3
    # the meta-features table's order (the JSON's: write_json sorts keys); token_length, null for every task, is dropped
    assert meta_model["families"]["mlp"]["scaler"]["names"] == ["noise", "x"]
    assert meta_model["families"]["mlp"]["grid"]["encoding"]["log"] == [True, False]  # hp.lr, hp.hidden
    assert summary["families"]["mlp"] == list(TASK_X)

    row = loto[(loto.task == "t4") & (loto.method == "surrogate") & (loto.k == 3)].iloc[0]
    configs = json.loads(row.configs)
    assert row.runs == len(configs) == 3
    assert row.seconds == pytest.approx(sum(1.0 + c["hidden"] / 16 for c in configs))
    assert row.grid_runs == 6 and row.grid_seconds == pytest.approx(15.0)
    # the random row scored 0.999 but only grid rows define the best
    assert row.grid_best_val_metric == pytest.approx(structured_score(1.0, 0.1, 32))
    assert row.grid_best_test_metric == pytest.approx(structured_score(1.0, 0.1, 32) - 0.01)
    # the top-1's scores are its grid row's: test_metric is the row's test accuracy
    top1 = configs[0]
    assert row.val_metric == pytest.approx(structured_score(1.0, top1["lr"], top1["hidden"]))
    assert row.test_metric == pytest.approx(row.val_metric - 0.01)
    assert (loto["metric"] == "accuracy").all()
    assert set(recommendations) == set(params.tasks)
    assert recommendations["t0"]["method"] == "safe"
    assert recommendations["t0"]["config"] in grid_configs(params.families["mlp"].space)
    assert isinstance(recommendations["t0"]["predicted_score"], float)


def test_single_task_family_records_nan_and_falls_back_to_default(fitted):
    loto, recommendations = fitted["loto"], fitted["recommendations"]
    solo = loto[loto.task == "solo"]
    learned = solo[~solo.method.isin(["default", "safe"])]
    assert learned["regret"].isna().all() and (learned["runs"] == 0).all()
    assert learned["note"].str.contains("no other cnn task").all()
    default = solo[solo.method == "default"]
    assert default["regret"].notna().all() and (default["runs"] == 1).all()
    # the safe rule always answers: the default config, saying why
    safe = solo[solo.method == "safe"]
    assert (safe["regret"].to_numpy() == default["regret"].to_numpy()).all() and (safe["fallback"] == "default").all()
    assert (safe["reason"] == "0 prior tasks: the safe rule needs 3").all()
    assert recommendations["solo"]["method"] == "safe" and recommendations["solo"]["fallback"] == "default"
    assert recommendations["solo"]["config"] == {"lr": 0.01, "hidden": 32}
    assert recommendations["solo"]["reason"] == "0 prior tasks: the safe rule needs 3"


def test_nearest_warm_start_uses_the_closest_task(synthetic, tmp_path):
    params, sweep_dir, meta_dir = synthetic
    params = params.model_copy(update={"meta": params.meta.model_copy(update={"recommend": "nearest"})})
    _, loto, recommendations = run_fit(params, sweep_dir, meta_dir, tmp_path / "meta")
    # t0 (x=-1) is closest to t1 (x=-0.9); t1's best config is lr=0.001, hidden=32
    assert recommendations["t0"]["neighbors"][0] == "t1"
    assert recommendations["t0"]["config"] == {"lr": 0.001, "hidden": 32}
    assert recommendations["t4"]["neighbors"][0] == "t5"
    nearest = loto[(loto.method == "nearest") & (loto.k == 1) & (loto.family == "mlp")]
    assert (nearest["regret"] == 0).all()  # neighbours share their best config by construction


def test_surrogate_beats_the_default(fitted):
    loto = fitted["loto"]
    mlp = loto[(loto.family == "mlp") & (loto.k == 1)]
    regret = mlp.groupby("method")["regret"].mean()
    assert regret["surrogate"] < regret["default"]
    assert regret["surrogate"] < 0.2


def test_loto_never_uses_the_held_out_task(fitted, synthetic, tmp_path):
    params, sweep_dir, meta_dir = synthetic
    before, recs_before = fitted["loto"], fitted["recommendations"]
    # scramble t2's scores: its own recommendations come from models fitted without it, so they stay
    scrambled = [0.1, 0.95, 0.3, 0.2, 0.6, 0.4]
    write_task(sweep_dir, meta_dir, "t2", "mlp", TASK_X["t2"], scores=scrambled)
    _, after, recs_after = run_fit(params, sweep_dir, meta_dir, tmp_path / "b")

    def configs(frame, task):
        return frame[frame.task == task].set_index(["method", "k"])["configs"]

    pd.testing.assert_series_equal(configs(before, "t2"), configs(after, "t2"))
    assert recs_before["t2"] == recs_after["t2"]
    # ...while t2's regrets are judged against its new table, and other folds did see the change
    assert not configs(before, "t2").empty
    assert not before[before.task == "t2"]["regret"].equals(after[after.task == "t2"]["regret"])
    assert any(not configs(before, t).equals(configs(after, t)) for t in TASK_X if t != "t2")


def test_fit_meta_is_deterministic(fitted, tmp_path):
    run_fit(fitted["params"], fitted["sweep_dir"], fitted["meta_dir"], tmp_path / "again")
    for name in ("loto.parquet", "recommendations.json", "model/meta_model.json"):
        assert (tmp_path / "again" / name).read_bytes() == (fitted["out_dir"] / name).read_bytes(), name


def test_gradient_boosting_surrogate(fitted, tmp_path):
    params = fitted["params"]
    params = params.model_copy(update={"meta": params.meta.model_copy(update={"surrogate": "gradient_boosting"})})
    data, grid = family_data(params, TASK_X, fitted["sweep_dir"], fitted["meta_dir"])
    save_meta_models({"mlp": FamilyMetaModel.fit(grid, data, params.meta, params.seed)}, tmp_path, params.seed)
    model = load_meta_model(tmp_path, "mlp")  # GradientBoostingRegressor's types are on the allow-list too
    assert type(model.surrogate).__name__ == "GradientBoostingRegressor"
    assert recommend(model, {"x": 1.0, "noise": 0.8}, 1)[0][0]["lr"] == 0.1


def test_skops_round_trip_predicts_identically(fitted, tmp_path):
    params, sweep_dir, meta_dir = fitted["params"], fitted["sweep_dir"], fitted["meta_dir"]
    data, grid = family_data(params, TASK_X, sweep_dir, meta_dir)
    fitted = FamilyMetaModel.fit(grid, data, params.meta, params.seed)
    save_meta_models({"mlp": fitted}, tmp_path / "model", params.seed)
    loaded = load_meta_model(tmp_path / "model", "mlp")

    new_dataset = {"x": 0.5, "noise": None, "unknown_feature": 3.0}
    for method in ("surrogate", "nearest", "portfolio", "default"):
        assert recommend(loaded, new_dataset, 4, method) == recommend(fitted, new_dataset, 4, method)
    inputs = np.random.default_rng(0).normal(size=(5, len(fitted.scaler.names) + 2))
    np.testing.assert_array_equal(loaded.surrogate.predict(inputs), fitted.surrogate.predict(inputs))


def test_recommend_for_a_new_dataset(fitted):
    model = load_meta_model(fitted["out_dir"] / "model", "mlp")
    top = recommend(model, {"features": {"x": 1.0, "noise": 0.8}}, 3)  # a whole metafeatures document works
    assert len(top) == 3
    assert top[0][0]["lr"] == 0.1  # x=1 wants lr=0.1
    assert [score for _, score in top] == sorted((score for _, score in top), reverse=True)


def test_recommend_for_an_unfitted_family_names_the_fitted_ones(fitted):
    with pytest.raises(MetahpoError, match=r"'bert'.*cnn, mlp"):
        load_meta_model(fitted["out_dir"] / "model", "bert")


def test_a_truncated_meta_model_file_is_refused_naming_it(fitted, tmp_path):
    import shutil

    model_dir = shutil.copytree(fitted["out_dir"] / "model", tmp_path / "model")
    surrogate = model_dir / "mlp.skops"
    surrogate.write_bytes(surrogate.read_bytes()[:-200])
    with pytest.raises(MetahpoError, match=r"mlp\.skops: it is truncated or corrupted \(BadZipFile.*rerun the fit_meta stage"):
        load_meta_model(model_dir, "mlp")
    (model_dir / "meta_model.json").write_text('{"format": ')
    with pytest.raises(MetahpoError, match=r"meta_model\.json: it is truncated or corrupted"):
        load_meta_model(model_dir, "mlp")


def test_skops_refuses_types_outside_the_allow_list(tmp_path):
    path = tmp_path / "evil.skops"
    skops.io.dump(FunctionTransformer(func=os.system), path)
    with pytest.raises(MetahpoError, match="allow-list"):
        load_surrogate(path)


def test_missing_sweep_table_is_a_clear_error(synthetic, tmp_path):
    params, sweep_dir, meta_dir = synthetic
    (sweep_dir / "t3.parquet").unlink()
    with pytest.raises(MetahpoError, match="t3.parquet not found"):
        fit_meta(params, sweep_dir, meta_dir, tmp_path / "meta")
    assert not (tmp_path / "meta" / "loto.parquet").exists()


def test_loto_folds_standardise_meta_features_on_the_training_tasks_only(fitted):
    params = fitted["params"]
    data, grid = family_data(params, TASK_X, fitted["sweep_dir"], fitted["meta_dir"])
    training = data.without("t4")
    others = [x for t, x in TASK_X.items() if t != "t4"]
    column = training.scaler.names.index("x")
    assert training.scaler.means[column] == pytest.approx(np.mean(others))
    assert training.scaler.scales[column] == pytest.approx(np.std(others))
    model = FamilyMetaModel.fit(grid, training, params.meta, params.seed)
    assert model.task_names == [t for t in TASK_X if t != "t4"]
    target = model.target(data.tasks["t4"].mf_raw)
    assert target.meta_features[column] == pytest.approx((1.0 - np.mean(others)) / np.std(others))


def test_the_surrogate_ranker_is_the_shared_surrogate_on_the_fold(fitted):
    """fit_meta's surrogate is hpo.surrogate's fit on the fold's prior TaskData (zero_shot's function)."""
    params = fitted["params"]
    data, grid = family_data(params, TASK_X, fitted["sweep_dir"], fitted["meta_dir"])
    training = data.without("t0")
    model = FamilyMetaModel.fit(grid, training, params.meta, params.seed)
    ranking = model.rank("surrogate", data.tasks["t0"].mf_raw)
    direct = surrogate.fit_surrogate(
        list(training.tasks.values()), surrogate_regressor(params.meta, params.seed), True, params.seed
    )
    expected = surrogate.predict(direct, model.target(data.tasks["t0"].mf_raw), True)
    np.testing.assert_allclose(ranking.scores, np.sort(expected)[::-1])
    assert grid.configs[ranking.indices[0]]["lr"] == 0.001  # x = -1 wants lr = 0.001


def test_a_meta_model_of_another_format_is_refused(fitted, tmp_path):
    model_dir = tmp_path / "model"
    for source in (fitted["out_dir"] / "model").iterdir():
        (model_dir / source.name).parent.mkdir(exist_ok=True)
        (model_dir / source.name).write_bytes(source.read_bytes())
    index = read_json(model_dir / "meta_model.json")
    write_json(model_dir / "meta_model.json", {**index, "format": 1})
    with pytest.raises(MetahpoError, match="has format 1, expected 3; rerun fit_meta"):
        load_meta_model(model_dir, "mlp")


def test_a_task_whose_every_grid_run_failed_has_no_regret_but_does_not_stop_fit_meta(synthetic, tmp_path):
    params, sweep_dir, meta_dir = synthetic
    write_task(sweep_dir, meta_dir, "t3", "mlp", TASK_X["t3"], scores=[None] * 6)
    _, loto, recommendations = run_fit(params, sweep_dir, meta_dir, tmp_path / "meta")
    failed = loto[loto.task == "t3"]
    assert failed["regret"].isna().all() and failed["note"].str.contains("every grid run of t3 failed").all()
    others = loto[(loto.family == "mlp") & (loto.task != "t3")]
    assert others["regret"].notna().all() and set(recommendations) == set(params.tasks)
