"""The HPO benchmark: metrics on a hand-worked regret table, the benchmark and recommend CLIs, the
Optuna warm start, and the key claim: on a meta-dataset whose optimum moves with a meta-feature,
transfer beats random search."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats
from test_meta import run_fit, write_synthetic  # the fitted-meta-model fixture data of test_meta

from metahpo.cli import main
from metahpo.errors import MetahpoError
from metahpo.hpo import metadataset, regret_summary
from metahpo.hpo.optuna_warmstart import warm_start_study
from metahpo.hpo.replay import replay_strategies
from metahpo.hpo.synthetic import make_synthetic

# strategy -> (task, seed) -> regret per trial; B's (t1, 1) run stopped after 2 trials (pool exhausted)
HAND_WORKED = {
    "A": {("t1", 0): [1.0, 0.5, 0.0], ("t2", 0): [0.8, 0.04, 0.04], ("t1", 1): [0.6, 0.6, 0.2], ("t2", 1): [1.0, 0.3, 0.005]},
    "B": {("t1", 0): [1.0, 0.5, 0.5], ("t2", 0): [0.2, 0.2, 0.01], ("t1", 1): [0.0, 0.0], ("t2", 1): [0.5, 0.5, 0.5]},
}


@pytest.fixture
def hand_worked() -> pd.DataFrame:
    rows = [
        (strategy, task, seed, trial, regret, 2.0 * trial)  # every evaluation costs 2
        for strategy, runs in HAND_WORKED.items()
        for (task, seed), regrets in runs.items()
        for trial, regret in enumerate(regrets, start=1)
    ]
    return pd.DataFrame(rows, columns=["strategy", "task", "seed", "trial", "regret", "cost"])


def test_regret_at_k_averages_tasks_then_seeds_with_a_t_interval(hand_worked):
    at = regret_summary.regret_at(hand_worked).set_index(["strategy", "trial"])
    assert at.index.tolist() == [("A", 1), ("B", 1)]  # 5, 10, ... are beyond the table
    assert at.loc[("A", 1), "regret"] == pytest.approx(0.85)  # seeds: 0.9, 0.8
    half = 12.7062047 * np.std([0.9, 0.8], ddof=1) / math.sqrt(2)  # t(0.975, 1 dof)
    assert at.loc[("A", 1), "ci_high"] - 0.85 == pytest.approx(half)
    assert at.loc[("B", 1), "regret"] == pytest.approx(0.425)  # seeds: 0.6, 0.25
    curves = regret_summary.mean_regret(hand_worked).set_index(["strategy", "trial"])
    assert curves.loc[("A", 3), "regret"] == pytest.approx((0.02 + 0.1025) / 2)
    assert curves.loc[("B", 3), "regret"] == pytest.approx((0.255 + 0.25) / 2)  # the stopped run keeps 0.0


def test_regret_at_k_over_tasks_averages_seeds_then_tasks_and_prints_as_markdown(hand_worked):
    at = regret_summary.regret_at(hand_worked, over="task").set_index(["strategy", "trial"])
    assert at.loc[("A", 1), "regret"] == pytest.approx(0.85)  # tasks: t1 (1.0 + 0.6) / 2, t2 (0.8 + 1.0) / 2
    half = 12.7062047 * np.std([0.8, 0.9], ddof=1) / math.sqrt(2)
    assert at.loc[("A", 1), "ci_high"] - 0.85 == pytest.approx(half)
    assert at.loc[("A", 1), "n_tasks"] == 2
    table = regret_summary.markdown_regret_at(at.reset_index(), order=["B", "A"]).splitlines()
    assert table[:2] == ["| strategy | @1 |", "|---|---|"]
    assert table[2].startswith("| B | 0.425 ±") and table[3] == f"| A | 0.850 ±{half:.3f} |"


def test_average_rank_averages_ties(hand_worked):
    ranks = regret_summary.average_rank(hand_worked).set_index(["strategy", "trial"])["rank"]
    assert ranks[("A", 1)] == pytest.approx((1.5 + 2 + 2 + 2) / 4)  # tied with B on (t1, 0)
    assert ranks[("B", 1)] == pytest.approx((1.5 + 1 + 1 + 1) / 4)
    assert ranks[("A", 3)] == ranks[("B", 3)] == pytest.approx(1.5)


def test_trials_and_cost_to_target(hand_worked):
    reach = regret_summary.time_to_target_summary(hand_worked).set_index(["strategy", "target"])
    columns = ["median_trials", "median_cost", "fraction_reached"]
    assert reach.loc[("A", 0.05), columns].tolist() == [3.0, 6.0, 0.75]  # runs: 3, 2, never, 3
    assert reach.filter(like="_low").isna().all().all()  # 4 runs: too few for a 95% interval of the median
    assert reach.loc[("B", 0.05), "median_trials"] == math.inf  # runs: never, 3, 1, never
    assert reach.loc[("B", 0.05), "fraction_reached"] == 0.5
    assert reach.loc[("B", 0.01), "fraction_reached"] == 0.5  # 0.01 <= 0.01 counts
    summary = regret_summary.summarize(hand_worked).set_index("strategy")
    assert summary.loc["A", "trials_to_0.05"] == 3.0 and summary.loc["A", "reached_0.05"] == 0.75
    assert summary.loc["A", "rank@last"] == 1.5
    text = regret_summary.format_summary(summary.reset_index())
    assert "0.850 ±0.635" in text and "3 (75%)" in text and "inf (50%)" in text


@pytest.mark.parametrize(("n", "draw", "median"), [(20, "exponential", math.log(2)), (51, "lognormal", 1.0)])
def test_median_interval_covers_the_true_median_95_percent_of_the_time(n, draw, median):
    rng = np.random.default_rng(n)
    samples = getattr(rng, draw)(size=(600, n))
    covered = [low <= median <= high for low, high in map(regret_summary.median_interval, samples)]
    # the order-statistic interval [x_(l), x_(u)] covers with probability P(l <= Binomial(n, 1/2) < u): 0.959
    # at n = 20 (l = 6, u = 15), 0.951 at n = 51 (l = 19, u = 33); [min, max] would cover ~100%
    low, high = regret_summary.median_interval(np.arange(1.0, n + 1))
    exact = stats.binom(n, 0.5).cdf(high - 1) - stats.binom(n, 0.5).cdf(low - 1)
    assert exact >= 0.95 and (low, high) == {20: (6, 15), 51: (19, 33)}[n]
    assert abs(np.mean(covered) - exact) < 4 * math.sqrt(exact * (1 - exact) / len(samples))


def test_median_interval_of_censored_runs_and_of_too_few_runs():
    # 7 runs reached the target at 1..7 trials, 3 never did: the 95% interval is [x_(2), x_(9)] = [2, inf)
    runs = np.array([4, 1, math.inf, 7, 2, math.inf, 3, 6, 5, math.inf])
    assert regret_summary.median_interval(runs) == (2.0, math.inf)
    assert regret_summary.median_interval(np.full(10, math.inf)) == (math.inf, math.inf)
    assert regret_summary.median_interval(np.arange(6.0)) == (0.0, 5.0)  # 6 runs: [min, max] covers 96.9%
    assert all(map(math.isnan, regret_summary.median_interval(np.arange(5.0))))  # [min, max] covers 93.8%: none
    assert all(map(math.isnan, regret_summary.median_interval([])))


def test_summary_gives_each_median_time_to_target_its_interval():
    # strategy C: 10 runs (5 tasks x 2 seeds) reach regret 0.05 at trial 1..7 or never (trial cost 3 s)
    firsts = [4, 1, None, 7, 2, None, 3, 6, 5, None]
    rows = [
        ("C", f"t{run // 2}", run % 2, trial, 0.0 if first is not None and trial >= first else 0.5, 3.0 * trial)
        for run, first in enumerate(firsts)
        for trial in range(1, 9)
    ]  # fmt: skip
    regret = pd.DataFrame(rows, columns=["strategy", "task", "seed", "trial", "regret", "cost"])
    summary = regret_summary.summarize(regret, targets=[0.05])
    assert summary.filter(like="_to_").iloc[0].to_dict() == {
        "trials_to_0.05": 5.5, "trials_to_0.05_low": 2.0, "trials_to_0.05_high": math.inf,
        "cost_to_0.05": 16.5, "cost_to_0.05_low": 6.0, "cost_to_0.05_high": math.inf,
    }  # fmt: skip
    assert "5.5 [2, inf) (70%)" in regret_summary.format_summary(summary)
    assert "16.5 [6, inf)" in regret_summary.format_summary(summary)
    # the text table of a summary written without the intervals shows the medians alone
    older = regret_summary.format_summary(summary.drop(columns=summary.filter(regex="_to_.*_(low|high)$").columns))
    assert "5.5 (70%)" in older and "[" not in older
    budgets = {f"t{task}": 1000.0 for task in range(5)}
    seconds = regret_summary.cost_to_target(regret, budgets, [0.05], reference=None).iloc[0]
    assert seconds[["median_s", "median_s_low", "median_s_high"]].tolist() == [16.5, 6.0, math.inf]
    assert "| C | 16 [6, inf) |" in regret_summary.markdown_cost_to_target(seconds.to_frame().T)


def test_seconds_to_target_within_a_budget_censors_the_unreached(hand_worked):
    # every trial costs 2 s; t1's budget is 7 s (3 trials cost 6), t2's 100 s
    table = regret_summary.cost_to_target(hand_worked, {"t1": 7.0, "t2": 100.0}, [0.05], reference="A")
    row = table.set_index("strategy")
    # A: (t1,0) 6 s, (t2,0) 4 s, (t1,1) never and its trials ended at 6 < 7 s (short), (t2,1) 6 s
    assert row.loc["A", ["runs", "reached", "out_of_trials", "median_s"]].tolist() == [4, 3, 1, 6.0]
    assert row.loc["A", "mean_s"] == pytest.approx((6 + 4 + 7 + 6) / 4)  # the unreached run at its budget
    assert row.loc["A", "mean_share"] == pytest.approx((6 / 7 + 0.04 + 1 + 0.06) / 4)
    # B: (t1,0) never (short), (t2,0) 6 s, (t1,1) 2 s, (t2,1) never (short): fewer than half reach -> inf
    assert row.loc["B", ["reached", "out_of_trials", "median_s"]].tolist() == [2, 2, math.inf]
    assert row.loc["B", "mean_ratio"] == pytest.approx((7 + 6 + 2 + 100) / 4 / 5.75)
    assert row.loc["B", "median_ratio"] == math.inf and row.loc["A", "median_ratio"] == 1.0
    over_b = regret_summary.cost_to_target(hand_worked, {"t1": 7.0, "t2": 100.0}, [0.05], reference="B")
    assert over_b["median_ratio"].isna().all()  # no ratio to an infinite median
    lines = regret_summary.markdown_cost_to_target(table, order=["A", "B"]).splitlines()
    assert lines[2] == "| A | 6 | 6 | 0.489 | 1.00 / 1.00 / 1.00 | 3/4 (1 short) |"
    assert lines[3].startswith("| B | inf | 29 |") and "2/4 (2 short)" in lines[3]
    with pytest.raises(ValueError, match="no budget"):
        regret_summary.cost_to_target(hand_worked, {"t1": 7.0}, [0.05])


@pytest.fixture
def synthetic_files(tmp_path):
    table, mf = make_synthetic(n_tasks=3, n_configs=20, seed=0, n_epochs=3)
    table.to_parquet(tmp_path / "meta.parquet")
    mf.to_parquet(tmp_path / "mf.parquet")
    return tmp_path


def test_objective_resolution_by_hand():
    table = pd.DataFrame({
        "task": ["a"] * 5 + ["b"] * 4,
        "hp.lr": [0.1, 0.2, 0.3, 0.4, 0.5, 0.1, 0.2, 0.3, 0.4],
        "objective": [0.9, 0.8, 0.9, 0.5, np.nan, 0.7, 0.7, 0.69, 0.6],
    })  # fmt: skip
    data = metadataset.from_frame(table)
    resolution = regret_summary.objective_resolution(data, {"a": 10}).set_index("task")
    # a: best 0.9, worst 0.5; one of 10 examples = 0.1 / 0.4 = regret 0.25; 2 of 5 rows at the best
    # (the failed row counts as the worst); b: no validation size, and 0.69 is at regret 0.1
    assert resolution.loc["a", "pool"] == 5 and resolution.loc["a", "n_validation"] == 10
    assert resolution.loc["a", "one_example"] == pytest.approx(0.25)
    assert resolution.loc["a", "within_0.05"] == resolution.loc["a", "within_0.01"] == pytest.approx(0.4)
    assert np.isnan(resolution.loc["b", "one_example"])
    assert resolution.loc["b", "within_0.05"] == pytest.approx(0.5)
    assert resolution.loc["b", "within_0.01"] == pytest.approx(0.5)


def test_cli_replay_writes_regret_and_caps_trials(synthetic_files, capsys):
    out = synthetic_files / "bench"
    argv = ["replay", "--meta-dataset", str(synthetic_files / "meta.parquet"), "--meta-features",
            str(synthetic_files / "mf.parquet"), "--strategies", "random,grid", "--trials", "30", "--seeds", "2",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "capped" in printed and "capped: 20 for task00, task01, task02 (random, grid)" in printed
    assert "regret@1" in printed and "regret@10" in printed
    regret = pd.read_parquet(out / "regret.parquet")
    assert {"strategy", "task", "seed", "trial", "regret", "cost"} <= set(regret.columns)
    assert regret["trial"].max() == 20 and len(regret) == 2 * 3 * 2 * 20
    assert (regret.groupby(["strategy", "task", "seed"])["regret"].last() == 0).all()  # whole pool seen


def test_cli_replay_reports_a_bad_meta_dataset(synthetic_files, capsys):
    table = pd.read_parquet(synthetic_files / "meta.parquet").drop(columns=["objective"])
    table.to_parquet(synthetic_files / "bad.parquet")
    out = synthetic_files / "bench"
    code = main(["replay", "--meta-dataset", str(synthetic_files / "bad.parquet"), "--strategies", "random",
                 "--trials", "5", "--seeds", "1", "--out", str(out)])  # fmt: skip
    assert code == 2
    assert "missing required column(s) ['objective']" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def fitted_model_dir(tmp_path_factory):
    """fit_meta's model folder for test_meta's synthetic mlp tasks (best lr = 10 ** (x - 2))."""
    base = tmp_path_factory.mktemp("fitted")
    params, sweep_dir, meta_dir = write_synthetic(base)
    run_fit(params, sweep_dir, meta_dir, base / "meta")
    return base / "meta" / "model"


def test_warm_start_enqueues_the_top_configs_into_a_real_study(fitted_model_dir):
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        hidden = trial.suggest_categorical("hidden", [16, 32])
        return -((math.log10(lr) + 1) ** 2) + (0.01 if hidden == 32 else 0.0)  # a dataset with x=1: lr 0.1

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    new_dataset = {"features": {"x": 1.0, "noise": 0.8}}
    configs = warm_start_study(study, fitted_model_dir, "mlp", new_dataset, n=3)
    warm_start_study(study, fitted_model_dir, "mlp", new_dataset, n=3)  # already enqueued: skipped
    study.optimize(objective, n_trials=5)
    trials = study.trials
    assert [t.params for t in trials[:3]] == configs  # enqueued trials run first, in rank order
    assert [t.user_attrs["metahpo_rank"] for t in trials[:3]] == [1, 2, 3]
    # the safe rule keeps the surrogate's pick here (six prior tasks, x=1 is one of them): no fallback
    assert all(t.user_attrs["metahpo_fallback"] == "" for t in trials[:3])
    lower, upper = trials[0].user_attrs["metahpo_interval"]
    assert lower <= trials[0].user_attrs["metahpo_predicted"] <= upper
    assert "metahpo_rank" not in trials[3].user_attrs  # then the sampler takes over
    assert trials[0].params["lr"] == 0.1 and trials[0].value == pytest.approx(study.best_value, abs=0.011)
    with pytest.raises(MetahpoError, match="no fitted meta-model for family 'bert'"):
        warm_start_study(study, fitted_model_dir, "bert", new_dataset, n=3)


def test_cli_recommend_prints_the_top_configs_of_a_bundled_dataset(fitted_model_dir, repo_root, capsys):
    argv = ["recommend", "--dataset", "iris", "--model", "mlp", "--top-k", "3", "--meta-model",
            str(fitted_model_dir), "--params", str(repo_root / "params.yaml"), "--method", "surrogate"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("top 3 mlp configurations for iris by surrogate")
    assert [line.split(".")[0].strip() for line in lines[1:]] == ["1", "2", "3"]
    scores = [float(line.rsplit("score=", 1)[1].split(" [")[0]) for line in lines[1:]]
    assert all("lr=" in line and "hidden=" in line for line in lines[1:]) and scores == sorted(scores, reverse=True)


def test_cli_recommend_reads_a_mirror_path(fitted_model_dir, repo_root, tmp_path, capsys):
    import datasets

    # a tiny tabular dataset in Hub layout: <mirror>/<org>/<name>/data/<split>-00000-of-00001.parquet
    rng = np.random.default_rng(0)
    features = datasets.Features({"a": datasets.Value("float64"), "b": datasets.Value("float64"),
                                  "label": datasets.ClassLabel(names=["no", "yes"])})  # fmt: skip
    columns = {"a": rng.normal(size=80), "b": rng.normal(size=80), "label": rng.integers(0, 2, 80)}
    folder = tmp_path / "mirror" / "someorg" / "tiny" / "data"
    folder.mkdir(parents=True)
    datasets.Dataset.from_dict(columns, features=features).to_parquet(folder / "train-00000-of-00001.parquet")
    argv = ["recommend", "--dataset", str(folder.parent), "--model", "mlp", "--top-k", "2", "--meta-model",
            str(fitted_model_dir), "--params", str(repo_root / "params.yaml")]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("top 2 mlp configurations") and len(lines) == 3


def test_cli_recommend_for_an_unfitted_family_is_a_clear_error(fitted_model_dir, repo_root, capsys):
    argv = ["recommend", "--dataset", "iris", "--model", "bert", "--meta-model", str(fitted_model_dir),
            "--params", str(repo_root / "params.yaml")]  # fmt: skip
    assert main(argv) == 2
    assert "no fitted meta-model for family 'bert'; fitted families: cnn, mlp" in capsys.readouterr().err


def test_transfer_and_zero_shot_beat_random_at_5_trials_over_20_seeds():
    """The optimum follows mf.m; transfer strategies that read the prior tasks must exploit it."""
    # small on purpose: the whole test replays 3 strategies x 20 seeds
    table, mf = make_synthetic(n_tasks=5, n_configs=150, seed=3, noise=0.02)
    data = metadataset.from_frame(table, meta_features=mf)
    held_out = ["task02"]  # the middle task: prior tasks on both sides of its meta-feature
    regret = replay_strategies(data, ["random", "zero_shot", "transfer_bo"], trials=5, seeds=range(20), tasks=held_out, progress=False)
    at5 = regret_summary.regret_at(regret, checkpoints=[5]).set_index("strategy")
    for strategy in ("zero_shot", "transfer_bo"):
        # beat random by more than both intervals: not a coin flip
        assert at5.loc[strategy, "ci_high"] < at5.loc["random", "ci_low"], at5
