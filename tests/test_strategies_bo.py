"""The from-scratch GP, gp_bo and transfer_bo, on small synthetic pools (whole file: well under a minute)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metahpo.hpo.base import Query, Strategy
from metahpo.hpo.gp import GaussianProcess, expected_improvement, matern52
from metahpo.hpo.metadataset import from_frame
from metahpo.hpo.replay import replay
from metahpo.hpo.strategies.gp_bo import GPBO, space_filling_rows
from metahpo.hpo.strategies.transfer_bo import TransferBO

OPTIMUM = (0.72, 0.28)


def bump(X: np.ndarray, optimum, scale: float = 1.0, offset: float = 0.0, wiggle: float = 7.0) -> np.ndarray:
    """A narrow peak (random search rarely lands on it) on a gently wavy floor."""
    peak = np.exp(-((X - np.asarray(optimum)) ** 2).sum(1) / (2 * 0.15**2))
    return offset + scale * (peak + 0.1 * np.sin(wiggle * X[:, 0]) * X[:, 1])


def pool(task: str, rows: int, optimum, seed: int, **shape) -> pd.DataFrame:
    X = np.random.default_rng(seed).uniform(size=(rows, 2))
    return pd.DataFrame({"task": task, "hp.a": X[:, 0], "hp.b": X[:, 1], "objective": bump(X, optimum, **shape)})


def final_regrets(strategy, data, seeds, trials: int, task: str = "target") -> np.ndarray:
    return np.array([replay(strategy, data, task, seed, trials)["regret"].iloc[-1] for seed in seeds])


class RandomPool(Strategy):
    """The baseline: uniformly random unobserved rows."""

    name = "random_pool"

    def ask(self) -> Query:
        return Query(int(self.rng.choice(self.unobserved())))


# --- the GP ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def noise_free_fit():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(25, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1] ** 2
    return X, y, GaussianProcess().fit(X, y, seed=0)


def test_gp_interpolates_noise_free_data(noise_free_fit):
    X, y, gp = noise_free_fit
    mean, variance = gp.predict(X)
    assert np.abs(mean - y).max() < 1e-2 * np.ptp(y)
    assert variance.max() < 1e-3 * y.var()
    far_mean, far_variance = gp.predict(np.array([[3.0, 3.0], [-2.0, 0.5]]))
    assert far_variance.min() > 100 * variance.max()


def test_gp_prior_mean_is_added_back():
    X = np.linspace(0, 1, 8)[:, None]
    y = 5.0 + 2.0 * X[:, 0]
    gp = GaussianProcess().fit(X, y, prior_mean=y, seed=0)  # a perfect prior mean: the residual is zero
    mean, _ = gp.predict(np.array([[0.5], [2.0]]), prior_mean=np.array([6.0, 9.0]))
    assert mean == pytest.approx([6.0, 9.0], abs=1e-6)


def test_gp_hyperparameter_fit_raises_the_marginal_likelihood(noise_free_fit):
    X, y, _ = noise_free_fit
    default = GaussianProcess().fit(X, y, optimise=False)
    fitted = GaussianProcess().fit(X, y, seed=0)
    assert fitted.log_likelihood() > default.log_likelihood() + 1.0


def test_gp_gradient_matches_finite_differences(noise_free_fit):
    X, y, gp = noise_free_fit
    z = (y - y.mean()) / y.std()
    theta = np.log([0.4, 0.7, 1.5, 1e-3])
    _, gradient = gp.log_marginal_likelihood(theta, X, z, gradient=True)
    step = 1e-6
    numeric = [(gp.log_marginal_likelihood(theta + step * e, X, z) - gp.log_marginal_likelihood(theta - step * e, X, z))
               / (2 * step) for e in np.eye(len(theta))]
    assert gradient == pytest.approx(numeric, rel=1e-4, abs=1e-4)


def test_gp_leave_one_out_means_match_refitting(noise_free_fit):
    X, y, gp = noise_free_fit
    K = matern52(X, X, gp.lengthscales, gp.signal_variance) + gp.noise * np.eye(len(X))
    z = (y - gp.offset) / gp.scale
    for i in (0, 7, 24):  # the held-out point's mean from the other points, same hyperparameters
        rest = np.arange(len(X)) != i
        direct = K[i, rest] @ np.linalg.solve(K[np.ix_(rest, rest)], z[rest])
        assert gp.loo_mean()[i] == pytest.approx(gp.offset + gp.scale * direct, rel=1e-5, abs=1e-6)


def test_expected_improvement():
    best = 1.0
    hopeless = expected_improvement(np.array([-5.0]), np.array([1e-6]), best)
    assert hopeless[0] == pytest.approx(0.0, abs=1e-12)
    ei = expected_improvement(np.array([0.5, 1.0, 1.5, 0.5]), np.array([0.1, 0.1, 0.1, 1.0]), best)
    assert (ei > 0).all()
    assert ei[2] > ei[1] > ei[0]  # a higher mean at equal variance
    assert ei[3] > ei[0]  # more variance at equal mean
    assert ei[2] == pytest.approx(0.5, rel=0.05)  # far above the best: about the mean gain
    assert expected_improvement(np.array([1.0]), np.array([0.1]), best, xi=0.5)[0] < ei[1]


# --- gp_bo -----------------------------------------------------------------------------------

@pytest.mark.slow  # 10 seeds x 15 GP-BO trials: ~16 s
def test_gp_bo_beats_random_search():
    data = from_frame(pool("target", 300, OPTIMUM, seed=0))
    seeds = range(10)
    gp_bo = final_regrets(GPBO, data, seeds, trials=15)
    random = final_regrets(RandomPool, data, seeds, trials=15)
    print(f"mean regret at 15 trials: gp_bo {gp_bo.mean():.3f}, random {random.mean():.3f}")
    # measured: gp_bo 0.091, random 0.221 here (a seed whose design misses the peak may stay on the
    # wavy floor); over 8 such pools x 8 seeds 0.067 vs 0.309 (0.163 with the old random design)
    assert gp_bo.mean() < random.mean() - 0.1


@pytest.mark.parametrize("warp", [1, 3])
def test_gp_bo_initial_design_fills_the_space(warp):
    # a 40 x 40 grid of cell centres (warp 3: crowded towards 0, and log-encoded by the two-decade
    # rule): a point of the pool's rank space snaps to a row of its own quadrant of that space
    centres = ((np.arange(40) + 0.5) / 40) ** warp
    a, b = np.meshgrid(centres, centres)
    X = np.column_stack([a.ravel(), b.ravel()])
    target = from_frame(pd.DataFrame({"task": "target", "hp.a": X[:, 0], "hp.b": X[:, 1],
                                      "objective": bump(X, OPTIMUM)})).tasks["target"]
    for seed in range(20):
        strategy = GPBO(target.hidden(), [], seed, budget=50)
        for _ in range(GPBO.n_init):
            query = strategy.ask()
            strategy.tell(query, float(target.y[query.index]))
        design = target.X[list(strategy.observed)]
        quadrants = {tuple(q) for q in (design >= np.median(target.X, axis=0)).astype(int)}
        # random rows share a quadrant in 5 seeds of 8; a scrambled Sobol sequence's first four
        # points lie in four different quadrants (of [0, 1]^2, not of the rank space, when warped)
        assert len(quadrants) == GPBO.n_init, seed


def test_space_filling_rows_are_distinct_even_for_the_whole_pool():
    X = np.random.default_rng(0).uniform(size=(6, 3))
    assert sorted(space_filling_rows(X, 10, seed=1)) == list(range(6))


def test_gp_bo_asks_distinct_rows_and_survives_failures():
    frame = pool("target", 60, OPTIMUM, seed=1)
    frame.loc[frame.index[::3], "objective"] = np.nan  # a third of the configurations fail
    data = from_frame(frame)
    asked = replay(GPBO, data, "target", seed=0, trials=30)["index"]
    assert asked.is_unique and len(asked) == 30


# --- transfer_bo -----------------------------------------------------------------------------

class SmallTransferBO(TransferBO):
    prior_rows = 80  # keeps the test fast; the default 200 is timed below


def transfer_data(meta_features: bool):
    """A target and four prior tasks sharing its optimum (other scales, offsets, wiggles), one that does not."""
    frames = [pool("target", 300, OPTIMUM, seed=0)]
    features = [{"task": "target", "mf.size": 0.0, "mf.noise": 0.0}]
    for i in range(4):
        frames.append(pool(f"same{i}", 300, OPTIMUM, seed=10 + i, scale=0.5 + i, offset=i, wiggle=5.0 + i))
        features.append({"task": f"same{i}", "mf.size": 0.1 * i + 0.05, "mf.noise": -0.05 * i})
    frames.append(pool("elsewhere", 300, (0.15, 0.85), seed=20))
    features.append({"task": "elsewhere", "mf.size": 5.0, "mf.noise": 4.0})
    table = pd.concat(frames, ignore_index=True)
    return from_frame(table, meta_features=pd.DataFrame(features) if meta_features else None)


@pytest.fixture(scope="module")
def gp_bo_regret_at_5():
    return final_regrets(GPBO, transfer_data(False), range(3), trials=5).mean()


@pytest.mark.parametrize("meta_features", [True, False])
def test_transfer_bo_beats_gp_bo_early(meta_features, gp_bo_regret_at_5):
    data = transfer_data(meta_features)
    transfer = final_regrets(SmallTransferBO, data, range(3), trials=5)
    print(f"meta-features={meta_features}: regret at 5 trials transfer_bo {transfer.mean():.3f}, gp_bo {gp_bo_regret_at_5:.3f}")
    # measured: transfer_bo 0.00 with and without meta-features, gp_bo 0.48
    assert transfer.mean() < gp_bo_regret_at_5 - 0.3


def test_transfer_bo_ensemble_prefers_related_tasks():
    data = transfer_data(True)
    strategy = SmallTransferBO(data.tasks["target"].hidden(), [data.tasks[n] for n in data.names if n != "target"], 0, 12)
    target = data.tasks["target"]
    for _ in range(12):
        query = strategy.ask()
        strategy.tell(query, float(target.y[query.index]))
    names = [model.task.name for model in strategy.models] + ["target"]
    weights = dict(zip(names, strategy.weights))
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["elsewhere"] < max(weights[f"same{i}"] for i in range(4))


def test_prior_models_are_fitted_and_predicted_once_and_shared_between_instances():
    data = transfer_data(False)
    prior = [data.tasks[n] for n in data.names if n != "target"]
    first = SmallTransferBO(data.tasks["target"].hidden(), prior, 0, 5)
    second = SmallTransferBO(data.tasks["target"].hidden(), prior, 1, 5)
    assert all(a.gp is b.gp for a, b in zip(first.models, second.models))
    assert all(len(model.gp.X) == SmallTransferBO.prior_rows for model in first.models)
    # predictions over the target pool (the same array in every hidden view) are computed once
    pool_x = first.target.X
    assert second.target.X is pool_x
    assert all(a.on_pool(pool_x)[0] is b.on_pool(pool_x)[0] for a, b in zip(first.models, second.models))
    assert not first.models[0].on_pool(pool_x)[0].flags.writeable  # shared: nobody may change it
    # and a different pool gets its own predictions
    other = data.tasks["same0"].X
    assert first.models[0].on_pool(other)[0] is not first.models[0].on_pool(pool_x)[0]
    assert len(first.models[0].on_pool(other)[0]) == len(other)


def test_transfer_bo_without_prior_tasks_is_plain_bo():
    data = from_frame(pool("target", 100, OPTIMUM, seed=0))
    asked = replay(TransferBO, data, "target", seed=0, trials=8)["index"]
    assert asked.is_unique and len(asked) == 8


def test_the_initial_design_reads_a_categorical_hyperparameter_as_one_coordinate_over_its_categories():
    from metahpo.hpo.synthetic import ACTIVATIONS, make_synthetic

    target = from_frame(make_synthetic(n_tasks=1, n_configs=216, seed=0, categorical=True)[0]).tasks["task00"]
    assert target.X.shape[1] == 3 + len(ACTIVATIONS)
    for seed in range(10):
        rows = space_filling_rows(target.X, 16, seed, target.encoding)
        # 16 Sobol points, one in each sixteenth of the category coordinate; a category holds 1/6 of
        # the pool, so it covers two whole sixteenths and meets at most four: asked 2 to 4 times
        counts = target.raw["hp.activation"].iloc[rows].value_counts()
        assert set(counts.index) == set(ACTIVATIONS) and counts.between(2, 4).all(), (seed, counts.to_dict())
        assert len(set(rows)) == 16


@pytest.mark.slow  # 8 held-out tasks x 8 seeds x 30 trials, twice: ~35 s of CPU
def test_gp_bo_reads_a_categorical_hyperparameter_better_one_hot_than_as_integer_codes():
    from metahpo.hpo.replay import replay_strategies
    from metahpo.hpo.synthetic import make_synthetic, order_encoded

    # the best activation is a lone peak between two bad neighbours in integer order, on a smooth trend
    table, mf = make_synthetic(n_tasks=8, n_configs=216, seed=0, categorical=True)
    one_hot, ordinal = from_frame(table, meta_features=mf), from_frame(order_encoded(table), meta_features=mf)
    assert one_hot.encoding.width == ordinal.encoding.width + 5  # six one-hot columns against one ordered

    def regret_at_30(data):
        regret = replay_strategies(data, ["gp_bo"], 30, range(8), progress=False)
        return regret[regret["trial"] == 30].groupby("seed")["regret"].mean()

    categories, codes = regret_at_30(one_hot), regret_at_30(ordinal)
    print(f"gp_bo regret@30 over 8 tasks x 8 seeds: one-hot {categories.mean():.3f}, codes {codes.mean():.3f}")
    # measured: 0.130 against 0.301 here (one-hot lower on 7 of 8 seeds); over seeds 0-15 0.151
    # against 0.272, a paired difference of 0.121 ±0.058 (95%): the margin sits below that interval
    assert categories.mean() < codes.mean() - 0.05
