"""weighted_portfolio: the greedy portfolio re-weighted by how each prior task orders the held-out task's results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metahpo.hpo.base import STRATEGIES
from metahpo.hpo.metadataset import from_frame
from metahpo.hpo.replay import replay
from metahpo.hpo.strategies.average_rank import AverageRank
from metahpo.hpo.strategies.portfolio import Portfolio
from metahpo.hpo.strategies.weighted_portfolio import WeightedPortfolio, discordant_pairs
from metahpo.hpo.synthetic import make_synthetic

# six configurations x = 1..6. Three prior tasks of one kind (a: each best at its own x = 1, 2, 3,
# all poor at 5 and 6) and one of another (b: best at 6, then 5, poor at 1-3); mean scores
# 0.6, 0.625, 0.575, 0.475, 0.3, 0.25 (no ties), so average_rank and portfolio start at x = 2
PRIOR = {
    "a1": [1.0, 0.8, 0.6, 0.5, 0.1, 0.0],
    "a2": [0.7, 1.0, 0.5, 0.5, 0.1, 0.0],
    "a3": [0.6, 0.7, 1.0, 0.4, 0.2, 0.0],
    "b1": [0.1, 0.0, 0.2, 0.5, 0.8, 1.0],
}
TARGET = [0.15, 0.05, 0.25, 0.5, 0.85, 0.95]


def frame(target=TARGET, prior=PRIOR, n: int = 6) -> pd.DataFrame:
    xs = range(1, n + 1)
    rows = [{"task": name, "hp.x": x, "objective": y} for name, ys in prior.items() for x, y in zip(xs, ys)]
    rows += [{"task": "target", "hp.x": x, "objective": y} for x, y in zip(xs, target)]
    return pd.DataFrame(rows)


def asked(strategy, data, seed: int = 0, trials: int = 6) -> list[int]:
    return replay(strategy, data, "target", seed, trials)["index"].tolist()


def test_discordant_pairs_counts_the_pairs_a_scenario_orders_the_other_way_ties_half():
    values = np.array([3.0, 2.0, 1.0])
    scores = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.9], [0.5, 0.5, 0.1]])
    np.testing.assert_allclose(discordant_pairs(scores, values), [0, 3, 0.5])
    # tied values say nothing about the order
    np.testing.assert_allclose(discordant_pairs(scores, np.array([1.0, 1.0, 1.0])), [0, 0, 0])


def test_before_any_result_it_asks_what_the_portfolio_asks_first():
    data = from_frame(frame())
    for seed in range(4):
        assert asked(WeightedPortfolio, data, seed, 1) == asked(Portfolio, data, seed, 1) == asked(AverageRank, data, seed, 1)


def test_results_move_the_weight_to_the_prior_task_that_orders_them():
    data = from_frame(frame())
    hidden, prior = data.fold("target")
    strategy = WeightedPortfolio(hidden, prior, seed=0, budget=6)
    np.testing.assert_allclose(strategy.weights(), 0.25)
    for index in (0, 2, 3):  # results that only b1 orders right: x = 4 beats 3 beats 1
        strategy.tell(type(strategy.ask())(index), TARGET[index])
    weights = strategy.weights()
    # b1 orders all 3 pairs right, a1 none, a2 half of one, a3 one: weights 1 : e^-3 : e^-2.5 : e^-2
    np.testing.assert_allclose(weights, np.exp([-3, -2.5, -2, 0]) / np.exp([-3, -2.5, -2, 0]).sum())
    assert strategy.ask().index == 5  # b1's best, x = 6


def test_on_targets_like_one_prior_task_it_finds_the_best_sooner_than_the_portfolio():
    # 40 random meta-datasets: 8 prior tasks with random scores over 30 configurations, the held-out
    # task a noisy copy of one of them; the portfolio cannot know which, the weighted one learns it
    rng = np.random.default_rng(0)
    sooner = []
    for _ in range(40):
        prior = {f"p{i}": rng.random(30).tolist() for i in range(8)}
        target = np.array(prior[f"p{rng.integers(8)}"]) + rng.normal(0, 0.05, 30)
        data = from_frame(frame(target.tolist(), prior, n=30))
        best = int(np.argmax(target))
        ours, theirs = asked(WeightedPortfolio, data, trials=30), asked(Portfolio, data, trials=30)
        assert sorted(ours) == list(range(30))  # the whole pool, each row once
        sooner.append(theirs.index(best) - ours.index(best))
    sooner = np.array(sooner)  # measured: 2.2 trials sooner on average, sooner on 17, later on 2
    assert sooner.mean() > 1 and (sooner > 0).sum() > 3 * (sooner < 0).sum()


def test_failed_results_count_as_the_worst_observed():
    target = list(TARGET)
    target[0] = np.nan
    data = from_frame(frame(target))
    hidden, prior = data.fold("target")
    strategy = WeightedPortfolio(hidden, prior, seed=0, budget=6)
    for index in (0, 3):  # x = 1 failed, x = 4 did not: only b1 has 4 above 1
        strategy.tell(type(strategy.ask())(index), target[index])
    assert np.argmax(strategy.weights()) == 3


def test_without_a_usable_prior_task_the_order_is_a_seeded_permutation():
    table = frame()
    table.loc[table["task"] != "target", "objective"] = np.nan
    data = from_frame(table)
    first = asked(WeightedPortfolio, data, seed=0)
    assert sorted(first) == list(range(6)) and asked(WeightedPortfolio, data, seed=0) == first
    assert any(asked(WeightedPortfolio, data, seed) != first for seed in range(1, 10))


def test_with_meta_features_the_zero_shot_forest_is_a_scenario_that_finds_the_moved_optimum():
    # the synthetic tasks' optimum moves with a meta-feature: without it the first asks are the
    # prior tasks' average, with it mostly the forest's guess for this task
    table, mf = make_synthetic(8, 300, seed=1)
    with_mf, without_mf = from_frame(table, meta_features=mf), from_frame(table)
    first = {}
    for name, data in (("with", with_mf), ("without", without_mf)):
        first[name] = np.mean([replay(WeightedPortfolio, data, task, 0, 1)["regret"].iloc[0] for task in data.names])
    hidden, prior = with_mf.fold(with_mf.names[0])
    assert len(WeightedPortfolio(hidden, prior, 0, 3).scenarios) == len(prior) + 1
    assert first["with"] < first["without"] - 0.2  # measured: 0.20 against 0.72


def test_registered_as_a_prior_user_at_full_fidelity_and_reproducible():
    assert STRATEGIES.get("weighted_portfolio") is WeightedPortfolio
    assert WeightedPortfolio.uses_prior and not WeightedPortfolio.multi_fidelity
    table, mf = make_synthetic(5, 200, seed=2)
    data = from_frame(table, meta_features=mf)
    runs = [replay(WeightedPortfolio, data, "task02", 4, 20)["index"].tolist() for _ in range(2)]
    assert runs[0] == runs[1] and len(set(runs[0])) == 20


def test_with_one_prior_task_the_forest_is_no_scenario_and_the_first_ask_is_its_best():
    # one prior task: no meta-feature varies, so the forest could only blur that task's own scores
    table, mf = make_synthetic(2, 200, seed=3)
    data = from_frame(table, meta_features=mf)
    hidden, prior = data.fold("task00")
    strategy = WeightedPortfolio(hidden, prior, 0, 5)
    assert len(strategy.scenarios) == 1
    assert strategy.ask().index == int(np.nanargmax(prior[0].y))
