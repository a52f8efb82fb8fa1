"""lc_transfer (ASHA over the prior order, stopping by the prior tasks' curves) and the tables it reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.metadataset import from_frame
from metahpo.hpo.prior_table import greedy_portfolio, prior_curve_gains
from metahpo.hpo.regret_summary import cost_to_target
from metahpo.hpo.replay import replay
from metahpo.hpo.strategies.lc_transfer import CurveTransfer
from metahpo.hpo.strategies.portfolio import Portfolio
from metahpo.hpo.synthetic import make_synthetic

EPOCHS = 27


@pytest.fixture(scope="module")
def synthetic():
    table, mf = make_synthetic(n_tasks=8, n_configs=300, seed=0, n_epochs=EPOCHS)
    return from_frame(table, meta_features=mf)


def test_registered_as_a_multi_fidelity_transfer_strategy():
    assert STRATEGIES.get("lc_transfer") is CurveTransfer
    assert CurveTransfer.uses_prior and CurveTransfer.multi_fidelity


def test_asks_only_pool_rows_at_valid_epochs_and_is_deterministic_per_seed(synthetic):
    target = synthetic.tasks["task03"]
    run = replay(CurveTransfer, synthetic, "task03", seed=2, trials=200)
    assert run["index"].between(0, len(target) - 1).all()
    assert set(run["epochs"]) <= {3, 9, EPOCHS}  # its rungs: min epoch 3, eta 3, then the full fidelity
    assert run.equals(replay(CurveTransfer, synthetic, "task03", seed=2, trials=200))
    # the first start is the portfolio's first row, in full
    portfolio = replay(Portfolio, synthetic, "task03", seed=2, trials=1)
    assert run["index"].iloc[0] == portfolio["index"].iloc[0] and run["epochs"].iloc[0] == EPOCHS


def test_replayed_to_the_end_never_asks_a_full_evaluation_twice(synthetic):
    target = synthetic.tasks["task05"]
    run = replay(CurveTransfer, synthetic, "task05", seed=0, trials=len(target) * EPOCHS)  # the replay raises on a repeat
    full = run[run["epochs"] == EPOCHS]
    assert full["index"].is_unique and len(full) == len(target)
    assert run["regret"].iloc[-1] == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_small_pools_replayed_to_the_end_on_every_task(seed):
    # every row gets started, so the last full evaluations come after the brackets (SH's best unfinished)
    table, mf = make_synthetic(n_tasks=4, n_configs=12, seed=seed, n_epochs=EPOCHS, failure_rate=0.2)
    small = from_frame(table, meta_features=mf)
    for task in small.names:
        run = replay(CurveTransfer, small, task, seed, trials=12 * EPOCHS)
        assert run[run["epochs"] == EPOCHS]["index"].is_unique and run["regret"].iloc[-1] == 0.0


def test_stops_configurations_the_prior_curves_say_cannot_catch_up(synthetic):
    run = replay(CurveTransfer, synthetic, "task02", seed=0, trials=120)
    partial, full = run[run["epochs"] < EPOCHS], set(run[run["epochs"] == EPOCHS]["index"])
    stopped = set(partial["index"]) - full
    assert len(stopped) > len(full)  # most starts end at a partial fidelity


def test_reaches_a_low_regret_for_less_cost_than_plain_asha(synthetic):
    budget_full = 10  # every run gets 10 mean full evaluations' worth of seconds on its task
    budgets = {name: budget_full * float(np.mean(task.cost)) for name, task in synthetic.tasks.items()}
    runs = [
        replay(STRATEGIES.get(name), synthetic, task, seed, trials=budget_full * EPOCHS, budget=106)
        for name in ("asha", "lc_transfer") for task in synthetic.names for seed in range(3)
    ]  # fmt: skip
    table = cost_to_target(pd.concat(runs), budgets, [0.05], reference="asha").set_index("strategy")
    # measured: lc_transfer 18 of 24 runs at regret 0.05, mean 221 s (0.44 of the budget); asha 5, 469 s (0.90);
    # the budget told, 106 trials, is benchmarks/lcbench_replay.py's mf_trials(10, 27)
    assert table.loc["lc_transfer", "reached"] >= 2 * table.loc["asha", "reached"]
    assert table.loc["lc_transfer", "mean_ratio"] < 0.7


def test_curve_gains_read_the_nearest_prior_configuration_short_curves_at_their_last_value():
    rows = [
        {"task": "p", "hp.x": 1.0, "objective": 0.9, "curve": [0.5, 0.7, 0.8, 0.9]},
        {"task": "p", "hp.x": 2.0, "objective": 0.6, "curve": [0.4, 0.6]},  # stopped after 2 epochs
        {"task": "p", "hp.x": 3.0, "objective": np.nan, "curve": []},  # failed
        {"task": "t", "hp.x": 1.1, "objective": 0.1, "curve": [0.1] * 4},
        {"task": "t", "hp.x": 2.1, "objective": 0.1, "curve": [0.1] * 4},
        {"task": "t", "hp.x": 2.9, "objective": 0.1, "curve": [0.1] * 4},
    ]
    hidden, prior = from_frame(pd.DataFrame(rows)).fold("t")
    gains = prior_curve_gains(hidden, prior, (1, 3))
    np.testing.assert_allclose(gains[0], [[0.4, 0.1], [0.2, 0.0], [np.nan, np.nan]])


def test_greedy_portfolio_stopping_early_picks_what_the_full_loop_picks():
    def full_loop(normalised, size):
        picks, best = [], np.zeros(len(normalised))
        for _ in range(min(size, normalised.shape[1])):
            gains = np.maximum(normalised, best[:, None]).mean(axis=0)
            gains[picks] = -np.inf
            picks.append(int(np.argmax(gains)))
            best = np.maximum(best, normalised[:, picks[-1]])
        return picks

    rng = np.random.default_rng(0)
    for _ in range(20):
        normalised = rng.random((int(rng.integers(1, 6)), int(rng.integers(2, 40)))).round(1)
        size = int(rng.integers(1, 50))
        assert greedy_portfolio(normalised, size) == full_loop(normalised, size)


def test_without_curves_it_asks_the_portfolio_order_in_full():
    table, mf = make_synthetic(n_tasks=5, n_configs=40, seed=1)  # no curve column: one fidelity
    flat = from_frame(table, meta_features=mf)
    run = replay(CurveTransfer, flat, "task02", seed=3, trials=15)
    assert run["index"].tolist() == replay(Portfolio, flat, "task02", seed=3, trials=15)["index"].tolist()
    assert (run["epochs"] == 1).all()


def test_curves_no_longer_than_its_first_rung_leave_only_full_evaluations():
    # 3-epoch curves and rungs from epoch 3: no rung below the full fidelity, no gains to read
    from metahpo.hpo.metadataset import from_frame
    from metahpo.hpo.replay import replay
    from metahpo.hpo.strategies.lc_transfer import CurveTransfer
    from metahpo.hpo.synthetic import make_synthetic

    table, mf = make_synthetic(n_tasks=3, n_configs=40, seed=0, n_epochs=3)
    run = replay(CurveTransfer, from_frame(table, meta_features=mf), "task01", seed=0, trials=10)
    assert len(run) == 10 and (run["epochs"] == 3).all() and run["index"].is_unique
