"""The benchmark stage on hand-made sweep tables: exports, regret table, summary, skipped families."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metahpo.stages.benchmark import REGRET_COLUMNS, run_benchmark
from metahpo.config import validate_params
from metahpo.errors import ParamsError
from metahpo.hpo.metadataset import read

TINY = Path(__file__).parent / "data" / "params_tiny.yaml"


def tiny_raw() -> dict:
    return yaml.safe_load(TINY.read_text())


def fake_sweep(task: str, space: dict, seed: int, failed: int = -1) -> pd.DataFrame:
    """A sweep table with the columns from_sweeps reads: one grid row per configuration."""
    rng = np.random.default_rng(seed)
    names = list(space)
    rows = []
    for i, values in enumerate(itertools.product(*(space[n]["values"] for n in names))):
        score = float(rng.uniform(0.5, 1.0))
        ok = i != failed
        rows.append({
            "task": task, "search": "grid", **{f"hp.{n}": v for n, v in zip(names, values)},
            "state": "ok" if ok else "diverged", "val_metric": score if ok else float("nan"),
            "seconds": float(rng.uniform(1, 2)), "curve_val_metric": [score * 0.9, score] if ok else [],
        })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def stage_inputs(tmp_path):
    raw = tiny_raw()
    params = validate_params(raw)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "metafeatures").mkdir()
    for seed, (task, spec) in enumerate(raw["tasks"].items()):
        space = raw["families"][spec["family"]]["space"]
        fake_sweep(task, space, seed, failed=1 if task == "wine-mlp" else -1).to_parquet(tmp_path / "sweep" / f"{task}.parquet")
    for seed, dataset in enumerate(raw["datasets"]):
        features = {"n_rows": 100.0 * (seed + 1), "n_classes": float(seed + 2), "undefined": None}
        (tmp_path / "metafeatures" / f"{dataset}.json").write_text(json.dumps({"dataset": dataset, "features": features}))
    return params, tmp_path


def test_benchmark_stage_writes_regret_summary_and_exports(stage_inputs):
    params, root = stage_inputs
    summary = run_benchmark(params, root / "sweep", root / "metafeatures", root / "benchmark", progress=False)

    regret = pd.read_parquet(root / "benchmark" / "regret.parquet")
    assert tuple(regret.columns) == REGRET_COLUMNS
    assert set(regret["family"]) == {"mlp"}  # cnn has one task: skipped
    assert set(regret["strategy"]) == {"random", "transfer_bo", "zero_shot"}
    assert set(regret["task"]) == {"iris-mlp", "wine-mlp"}
    assert set(regret["seed"]) == {0, 1}
    # benchmark.trials = 4 = the mlp pool (2 lr x 2 hidden): every run evaluates the whole pool
    runs = regret.groupby(["strategy", "task", "seed"])["trial"].max()
    assert (runs == 4).all()
    assert regret["regret"].between(0, 1).all()
    assert (regret.groupby(["strategy", "task", "seed"])["regret"].last() == 0).all()  # whole pool seen

    on_disk = json.loads((root / "benchmark" / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert "skipped" in on_disk["families"]["cnn"]["note"]
    mlp = on_disk["families"]["mlp"]
    assert mlp["tasks"] == ["iris-mlp", "wine-mlp"] and mlp["meta_features"] is True
    assert {row["strategy"] for row in mlp["summary"]} == {"random", "transfer_bo", "zero_shot"}
    assert all("regret@1" in row and "rank@last" in row for row in mlp["summary"])
    # the fake meta-features have no n_validation: shares of the pool only
    assert [row["task"] for row in mlp["resolution"]] == ["iris-mlp", "wine-mlp"]
    assert all(row["pool"] == 4 and row["one_example"] is None for row in mlp["resolution"])
    assert all(0.25 <= row["within_0.05"] <= 1 for row in mlp["resolution"])  # the best is within

    # the export is a valid meta-dataset: the failed row kept with a NaN objective
    export = root / "benchmark" / "export"
    assert sorted(p.name for p in export.iterdir()) == ["metadataset-mlp.parquet", "metafeatures-mlp.parquet"]
    data = read(export / "metadataset-mlp.parquet", meta_features=export / "metafeatures-mlp.parquet")
    assert data.names == ["iris-mlp", "wine-mlp"]
    assert np.isnan(data.tasks["wine-mlp"].y).sum() == 1
    assert data.tasks["iris-mlp"].n_epochs == 2


def test_benchmark_stage_without_meta_features_still_runs(stage_inputs):
    params, root = stage_inputs
    (root / "metafeatures" / "wine.json").unlink()
    summary = run_benchmark(params, root / "sweep", root / "metafeatures", root / "benchmark", progress=False)
    assert summary["families"]["mlp"]["meta_features"] is False
    assert not (root / "benchmark" / "export" / "metafeatures-mlp.parquet").exists()


def test_missing_sweep_table_names_the_stage_to_run(stage_inputs):
    params, root = stage_inputs
    (root / "sweep" / "iris-mlp.parquet").unlink()
    with pytest.raises(Exception, match="run the sweep stage for task 'iris-mlp'"):
        run_benchmark(params, root / "sweep", root / "metafeatures", root / "benchmark", progress=False)
    assert not (root / "benchmark" / "regret.parquet").exists()


def test_default_strategies_are_every_registered_one():
    from metahpo.hpo.base import STRATEGIES

    raw = tiny_raw()
    raw["benchmark"] = {}
    params = validate_params(raw)
    assert params.benchmark.strategies is None
    assert params.benchmark.strategy_names() == STRATEGIES.names()


@pytest.mark.parametrize(
    "section, value, expected",
    [
        ("benchmark", {"strategies": ["random", "bayes"]}, "benchmark.strategies.1: unknown strategy 'bayes'; valid names: "),
        ("benchmark", {"trials": 0}, "benchmark.trials: Input should be greater than 0"),
        ("benchmark", {"seeds": 0}, "benchmark.seeds: Input should be greater than 0"),
        ("tune", {"strategy": "nope"}, "tune.strategy: unknown strategy 'nope'; valid names: "),
        ("tune", {"baseline": "nope"}, "tune.baseline: unknown strategy 'nope'; valid names: "),
        ("tune", {"trials": 0}, "tune.trials: Input should be greater than 0"),
    ],
)
def test_benchmark_and_tune_params_are_validated(section, value, expected):
    raw = copy.deepcopy(tiny_raw())
    raw[section] = value
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert expected in str(err.value)
    if "unknown strategy" in expected:
        assert "transfer_bo" in str(err.value)  # the valid names are listed


@pytest.mark.parametrize("section", ["benchmark", "tune"])
def test_benchmark_and_tune_sections_are_required(section):
    raw = tiny_raw()
    del raw[section]
    with pytest.raises(ParamsError, match=f"{section}: missing"):
        validate_params(raw)
