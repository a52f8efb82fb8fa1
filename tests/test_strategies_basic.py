"""grid, random, tpe, zero_shot and the successive-halving family, replayed on small meta-datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.metadataset import from_frame
from metahpo.hpo.replay import replay
from metahpo.hpo.strategies.grid import Grid
from metahpo.hpo.strategies.random_search import RandomSearch
from metahpo.hpo.strategies.successive_halving import bracket_plan, rung_epochs
from metahpo.hpo.strategies.tpe import TPE
from metahpo.hpo.strategies.zero_shot import ZeroShot, prior_scores

MINE = ["grid", "random", "tpe", "zero_shot", "sh", "asha", "sh_warm", "asha_warm"]
LRS = 10 ** np.linspace(-5, -1, 10)
BATCH_SIZES = [16, 32, 64]
EPOCHS = 27


def sweep_table(best_lr_exponents: list[float], curves: bool = True) -> pd.DataFrame:
    """One task per optimum: a 10 x 3 grid of (lr, batch size), quadratic in log10(lr) and log2(batch size).

    Curves rise towards the objective at a speed that depends on the row, so partial values rank the
    rows differently from the final ones; every full evaluation costs EPOCHS seconds.
    """
    rows = []
    for task, best_exponent in enumerate(best_lr_exponents):
        for lr in LRS:
            for batch_size in BATCH_SIZES:
                objective = 1 - 0.1 * (np.log10(lr) - best_exponent) ** 2 - 0.05 * (np.log2(batch_size) - 5) ** 2
                row = {"task": f"t{task}", "hp.lr": lr, "hp.batch_size": batch_size, "objective": objective}
                row["cost"] = float(EPOCHS)
                if curves:
                    speed = 1 + (np.log2(batch_size) % 3)
                    row["curve"] = list(objective - np.exp(-speed * np.arange(1, EPOCHS + 1) / EPOCHS))
                    row["curve"][-1] = objective
                rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data():
    return from_frame(sweep_table([-3.0, -3.5, -2.5, -3.2]))


def full_rows(run: pd.DataFrame, n_epochs: int) -> pd.DataFrame:
    return run[run["epochs"] >= n_epochs]


def test_grid_asks_rows_in_order_without_repeats(data):
    run = replay(Grid, data, "t0", seed=5, trials=100)
    assert run["index"].tolist() == list(range(len(data.tasks["t0"])))


def test_random_is_a_seeded_permutation(data):
    n = len(data.tasks["t0"])
    order = lambda seed: replay(RandomSearch, data, "t0", seed, trials=n)["index"].tolist()  # noqa: E731
    first = order(0)
    assert sorted(first) == list(range(n))
    assert first != list(range(n))
    assert order(0) == first
    assert order(1) != first


@pytest.mark.parametrize("name", MINE)
def test_replayed_to_the_end_finds_the_best_and_never_repeats_a_full_evaluation(data, name):
    strategy = STRATEGIES.get(name)
    target = data.tasks["t1"]
    trials = len(target) * (target.n_epochs if strategy.multi_fidelity else 1)
    run = replay(strategy, data, "t1", seed=3, trials=trials)  # the replay raises on a repeated full query
    full = full_rows(run, target.n_epochs)
    assert full["index"].is_unique
    assert len(full) == len(target)
    assert run["regret"].iloc[-1] == 0.0
    assert run["regret"].is_monotonic_decreasing


def test_tpe_beats_random_on_a_smooth_task():
    lr = 10 ** np.linspace(-5, -1, 200)
    smooth = from_frame(pd.DataFrame({"task": "smooth", "hp.lr": lr, "objective": -(np.log10(lr) + 2.3) ** 2}))
    final = {
        cls: np.mean([replay(cls, smooth, "smooth", seed, trials=15)["regret"].iloc[-1] for seed in range(10)])
        for cls in (TPE, RandomSearch)
    }
    # measured: tpe 0.0008, random 0.0049 (mean final regret over seeds 0-9)
    assert final[TPE] < 0.5 * final[RandomSearch]


def test_tpe_tells_optuna_a_failed_row_as_failed():
    table = sweep_table([-3.0], curves=False)
    table.loc[table.index[::2], "objective"] = np.nan
    target = from_frame(table).tasks["t0"]
    strategy = TPE(target.hidden(), [], seed=0, budget=6)
    for _ in range(6):
        query = strategy.ask()
        strategy.tell(query, float(target.y[query.index]))
    states = [t.state.name for t in strategy.study.trials]
    assert states.count("FAIL") == sum(~np.isfinite(target.y[list(strategy.observed)]))
    assert "FAIL" in states and "COMPLETE" in states


@pytest.mark.parametrize("with_meta_features", [False, True])
def test_zero_shot_asks_the_optimum_of_every_prior_task_first(with_meta_features):
    table = sweep_table([-3.1] * 4, curves=False)  # one best row per task, the same in all
    meta_features = pd.DataFrame({"task": ["t0", "t1", "t2", "t3"], "mf.rows": [1.0, 2.0, 3.0, 4.0]})
    same_optimum = from_frame(table, meta_features=meta_features if with_meta_features else None)
    run = replay(ZeroShot, same_optimum, "t0", seed=0, trials=3)
    assert run["index"].iloc[0] == int(np.nanargmax(same_optimum.tasks["t0"].y))
    assert run["regret"].iloc[0] == 0.0


def test_rungs_and_bracket_sizing():
    assert rung_epochs(1, 3, 27) == [1, 3, 9, 27]
    assert rung_epochs(1, 3, 20) == [1, 3, 9, 20]
    assert rung_epochs(1, 3, 1) == [1]
    assert bracket_plan(40, 4, 1000, 3) == (0, 27)  # 27 + 9 + 3 + 1 = 40
    assert bracket_plan(20, 4, 1000, 3) == (1, 14)  # too few trials to start at epoch 1: 14 + 4 + 1 = 19
    assert bracket_plan(40, 4, 10, 3) == (1, 10)  # too few rows for 27 starts
    assert bracket_plan(0, 4, 10, 3) is None


@pytest.mark.parametrize("name", ["sh", "asha"])
def test_successive_halving_promotes_the_best_partial_results_for_less_cost(data, name):
    target = data.tasks["t0"]
    run = replay(STRATEGIES.get(name), data, "t0", seed=0, trials=40)
    started = run["index"].nunique()
    assert run["cost"].iloc[-1] < started * EPOCHS / 3  # full evaluations of as many configurations cost 3x more
    assert len(full_rows(run, EPOCHS)) >= 1
    rungs = [1, 3, 9, EPOCHS]
    partial = lambda index, epochs: target.curves[index][epochs - 1]  # noqa: E731
    lower_rung = dict(zip(rungs[1:], rungs))
    for promotion in run[run["epochs"] > 1].itertuples():
        lower = lower_rung[promotion.epochs]
        before = run[(run["trial"] < promotion.trial) & (run["epochs"] == lower)]
        assert promotion.index in before["index"].tolist()  # a promotion re-asks a configuration evaluated below
        values = sorted((partial(i, lower) for i in before["index"]), reverse=True)
        # sh: the rung is finished and only its best 1/3 go up; asha: in the top 1/3 of the rung so far
        assert partial(promotion.index, lower) >= values[len(values) // 3 - 1]
    if name == "sh":  # synchronous: exactly the best 27 -> 9 -> 3 -> 1
        assert run["epochs"].value_counts().to_dict() == {1: 27, 3: 9, 9: 3, EPOCHS: 1}


@pytest.mark.parametrize("name", ["sh", "asha"])
def test_successive_halving_never_promotes_a_crashed_run_and_never_repeats_it(name):
    table = sweep_table([-3.0, -2.0])
    crashed = table.index[::7]
    table.loc[crashed, "objective"] = np.nan
    table.loc[crashed, "curve"] = pd.Series([curve[:2] for curve in table.loc[crashed, "curve"]], index=crashed)
    with_crashes = from_frame(table)
    failed_rows = set(np.flatnonzero(np.isnan(with_crashes.tasks["t0"].y)))
    run = replay(STRATEGIES.get(name), with_crashes, "t0", seed=0, trials=40)
    # crashed after 2 epochs: a promotion to epoch 3 gets NaN (answered in full), and goes no further
    assert not failed_rows & set(run[run["epochs"] > 3]["index"])
    # replayed to the end, a crashed row answered in full at epoch 3 is not asked in full again (the replay raises)
    to_the_end = replay(STRATEGIES.get(name), with_crashes, "t0", seed=0, trials=30 * EPOCHS)
    assert to_the_end["regret"].iloc[-1] == 0.0


def test_without_curves_successive_halving_is_random_search():
    flat = from_frame(sweep_table([-3.0, -2.0], curves=False))
    for name in ("sh", "asha"):
        run = replay(STRATEGIES.get(name), flat, "t0", seed=4, trials=12)
        assert run["index"].tolist() == replay(RandomSearch, flat, "t0", seed=4, trials=12)["index"].tolist()


@pytest.fixture(scope="module")
def zero_shot_order(data) -> list[int]:
    return replay(ZeroShot, data, "t2", seed=1, trials=27)["index"].tolist()


@pytest.mark.parametrize("name", ["sh_warm", "asha_warm"])
def test_warm_variants_start_from_the_zero_shot_ranking(data, zero_shot_order, name):
    run = replay(STRATEGIES.get(name), data, "t2", seed=1, trials=40)
    starts = run[run["epochs"] == 1]["index"].tolist()
    assert len(starts) >= 9
    assert starts == zero_shot_order[: len(starts)]


def test_transfer_bo_warm_start_is_the_zero_shot_ranking(data, zero_shot_order):
    run = replay(STRATEGIES.get("transfer_bo"), data, "t2", seed=1, trials=2)
    assert run["index"].tolist() == zero_shot_order[:2]


def test_the_meta_model_is_fitted_once_per_pool_and_prior(data):
    prior = [data.tasks[n] for n in data.names if n != "t2"]
    first = prior_scores(data.tasks["t2"].hidden(), prior)
    assert prior_scores(data.tasks["t2"].hidden(), prior) is first  # another view of the same pool
    assert not first.flags.writeable  # shared: nobody may change it
    assert prior_scores(data.tasks["t2"].hidden(), prior[:-1]) is not first  # another prior


def test_every_strategy_here_is_registered_with_its_kind():
    assert all(name in STRATEGIES for name in MINE)
    assert [n for n in MINE if STRATEGIES.get(n).uses_prior] == ["zero_shot", "sh_warm", "asha_warm"]
    assert [n for n in MINE if STRATEGIES.get(n).multi_fidelity] == ["sh", "asha", "sh_warm", "asha_warm"]


def test_replay_shows_a_strategy_the_held_out_task_standardised_on_the_prior_alone():
    mf = pd.DataFrame({"task": ["t0", "t1", "t2"], "mf.size": [1.0, 3.0, 11.0]})
    data = from_frame(sweep_table([-3.0, -3.5, -2.5], curves=False), meta_features=mf)
    seen = {}

    class Spy(Grid):
        def __init__(self, target, prior, seed, budget) -> None:
            super().__init__(target, prior, seed, budget)
            seen["target"], seen["prior"] = target, prior

    run = replay(Spy, data, "t2", seed=0, trials=3)
    assert seen["target"].y is None and [p.name for p in seen["prior"]] == ["t0", "t1"]
    np.testing.assert_allclose(seen["target"].meta_features, [9.0])  # (11 - 2) / 1: t0 and t1's mean and std
    np.testing.assert_allclose([p.meta_features[0] for p in seen["prior"]], [-1.0, 1.0])
    assert run["index"].tolist() == [0, 1, 2]


def test_tpe_suggests_a_categorical_hyperparameter_as_a_category_and_asks_pool_rows():
    from metahpo.hpo.synthetic import ACTIVATIONS, make_synthetic

    table, _ = make_synthetic(n_tasks=1, n_configs=60, seed=0, categorical=True)  # 10 grid points x 6 activations
    target = from_frame(table).tasks["task00"]
    strategy = TPE(target.hidden(), [], seed=0, budget=20)
    distribution = strategy.distributions["hp.activation"]
    assert isinstance(distribution, CategoricalDistribution) and distribution.choices == ACTIVATIONS
    asked = []
    for _ in range(20):
        query = strategy.ask()
        asked.append(query.index)
        trial = strategy.study.trials[-1]
        # snapped to a row of the suggested category (every category keeps free rows here)
        assert target.raw["hp.activation"].iloc[query.index] == trial.params["hp.activation"]
        strategy.tell(query, float(target.y[query.index]))
    assert len(set(asked)) == 20 and all(0 <= i < len(target) for i in asked)
    assert {t.params["hp.activation"] for t in strategy.study.trials} <= set(ACTIVATIONS)


@pytest.fixture(scope="module")
def categorical_data():
    from metahpo.hpo.synthetic import make_synthetic

    table, mf = make_synthetic(n_tasks=3, n_configs=60, seed=0, n_epochs=3, failure_rate=0.05, categorical=True)
    return from_frame(table, meta_features=mf)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_replays_a_meta_dataset_with_a_categorical_hyperparameter(categorical_data, name):
    assert categorical_data.encoding.categories[-1] == ("elu", "gelu", "relu", "selu", "swish", "tanh")
    run = replay(STRATEGIES.get(name), categorical_data, "task01", seed=0, trials=12)  # refuses a repeated full row
    assert len(run) == 12 and run["regret"].is_monotonic_decreasing
    assert run["index"].between(0, len(categorical_data.tasks["task01"]) - 1).all()
