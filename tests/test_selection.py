"""Model selection (issue 11): target subsets, selectors, the meta-learned selector, the metrics, the
stages on bundled digits (pool, ground truth, selection, resume) and the `metahpo select` CLI."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from metahpo.config import validate_params
from metahpo.errors import DataError, MetahpoError, ParamsError
from metahpo.selection.evaluate import ranking_metrics, shot_rows
from metahpo.selection.meta import MetaSelector, feature_frame
from metahpo.selection.pool import HeadOnly, class_subset
from metahpo.selection.selectors import CHEAP, SELECTORS, Context

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "params_tiny.yaml"


def _dataset(labels_by_split: dict[str, list[int]], names=("a", "b", "c")) -> tuple[DatasetDict, dict]:
    features = Features({"input": Value("string"), "label": ClassLabel(names=list(names))})
    splits = {s: Dataset.from_dict({"input": [f"{s}{i}" for i in range(len(y))], "label": y}, features=features)
              for s, y in labels_by_split.items()}  # fmt: skip
    info = {"dataset": "toy", "task_type": "classification", "modality": "text", "num_classes": len(names),
            "label_names": list(names)}  # fmt: skip
    return DatasetDict(splits), info


def test_class_subset_relabels_in_the_given_order_and_caps_train():
    data, info = _dataset({"train": [0, 1, 2] * 10, "validation": [0, 1, 2], "test": [2, 1, 0]})
    subset, sub_info = class_subset(data, info, ["c", "a"], 8, seed=0, name="t")
    assert sub_info["num_classes"] == 2 and sub_info["label_names"] == ["c", "a"]
    assert subset["train"].features["label"].names == ["c", "a"]
    assert len(subset["train"]) == 8 and sorted(set(subset["train"]["label"])) == [0, 1]
    # test rows were [c, b, a]: b is dropped, c -> 0, a -> 1, order kept
    assert subset["test"]["label"] == [0, 1] and subset["test"]["input"] == ["test0", "test2"]
    again, _ = class_subset(data, info, ["c", "a"], 8, seed=0, name="t")
    assert again["train"]["input"] == subset["train"]["input"]


@pytest.mark.parametrize("classes", [["a", "z"], ["a"], ["a", "a"]])
def test_class_subset_refuses_unknown_single_or_repeated_labels(classes):
    data, info = _dataset({"train": [0, 1, 2], "validation": [0, 1, 2], "test": [0, 1, 2]})
    with pytest.raises(DataError, match="its labels: a, b, c"):
        class_subset(data, info, classes, None, 0, "t")


def test_shot_rows_are_stratified_seeded_and_refuse_too_few_examples():
    labels = np.array([0] * 40 + [1] * 20)
    rows = shot_rows(labels, 12, 2, seed=0, target="t", redraw=0)
    assert len(rows) == 12 and np.bincount(labels[rows]).tolist() == [8, 4]
    assert np.array_equal(rows, shot_rows(labels, 12, 2, 0, "t", 0))
    assert not np.array_equal(rows, shot_rows(labels, 12, 2, 0, "t", 1))
    with pytest.raises(DataError, match="fewer than shots = 100"):
        shot_rows(labels, 100, 2, 0, "t", 0)
    with pytest.raises(DataError, match="fewer than 2 per class"):
        shot_rows(labels, 3, 2, 0, "t", 0)


def test_ranking_metrics_by_hand():
    truth = np.array([0.5, 0.9, 0.1, 0.7])
    worst_first = ranking_metrics(np.array([4.0, 1.0, 3.0, 2.0]), truth)
    assert worst_first["regret"] == pytest.approx(0.4) and worst_first["hit3"] == 0.0 and worst_first["chosen"] == 0
    best_first = ranking_metrics(truth * 10, truth)
    assert best_first["regret"] == 0 and best_first["hit3"] == 1 and best_first["tau"] == pytest.approx(1.0)
    # NaN scores rank last: member 1 (the best) without a score is never chosen
    missing = ranking_metrics(np.array([1.0, np.nan, 0.0, 2.0]), truth)
    assert missing["chosen"] == 3 and missing["regret"] == pytest.approx(0.2)


def _context(seed: int = 0, prior: pd.DataFrame | None = None) -> Context:
    """Three members on 24 examples of 3 classes: 'good' separates the classes, 'noise' does not."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 8)
    good = np.eye(3)[labels] * 5 + rng.normal(0, 0.3, (24, 3))
    noise = rng.normal(0, 1, (24, 6))
    half = np.eye(3)[labels] * 0.5 + rng.normal(0, 1, (24, 3))
    probabilities = np.full((24, 4), 0.25)
    probabilities[np.arange(24), labels] = 0.7
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    descriptors = {
        name: {"family": "cnn", "finetune": "all", "kind": "trained", "parameters": 1000,
               "source": {"num_classes": 4, "rows": 100}, "training": {"val_metric": 0.9}}
        for name in ("good", "noise", "half")
    }  # fmt: skip
    return Context(target="t", redraw=0, members=["good", "noise", "half"], labels=labels, num_classes=3,
                   modality="image", features={"good": good, "noise": noise, "half": half},
                   source_probabilities={"good": probabilities, "noise": None, "half": np.full((24, 4), 0.25)},
                   descriptors=descriptors, seed=seed,
                   prior_truth=prior if prior is not None else pd.DataFrame(columns=["target", "member", "truth"]))  # fmt: skip


@pytest.mark.parametrize("name", ["knn", "linear_probe", "logme", "hscore"])
def test_feature_selectors_rank_the_separating_member_first(name):
    score = SELECTORS.get(name).rank(_context()).score
    assert score[0] > score[1] and score[0] >= score[2]
    if name in ("knn", "linear_probe"):
        assert score[0] == 1.0  # well-separated classes: every held-out example right


def test_prediction_selectors_score_nan_without_a_source_head_and_prefer_informative_predictions():
    for name in ("leep", "nce"):
        score = SELECTORS.get(name).rank(_context()).score
        assert np.isnan(score[1]) and score[0] > score[2]


def test_random_and_best_on_average():
    prior = pd.DataFrame({"target": ["p", "p", "q", "q"], "member": ["noise", "half", "noise", "half"],
                          "truth": [0.9, 0.5, 0.7, 0.6]})  # fmt: skip
    score = SELECTORS.get("best_on_average").rank(_context(prior=prior)).score
    assert score[1] == pytest.approx(0.8) and score[2] == pytest.approx(0.55) and score[0] == -np.inf
    first = SELECTORS.get("random").rank(_context()).score
    assert np.array_equal(first, SELECTORS.get("random").rank(_context()).score)
    assert not np.array_equal(first, SELECTORS.get("random").rank(_context(seed=1)).score)


def _scored(seed: int) -> Context:
    context = _context(seed)
    for name in CHEAP:
        context.cheap_scores[name] = SELECTORS.get(name).rank(context).score
    return context


def test_meta_selector_learns_the_outcome_gives_an_interval_and_round_trips(tmp_path):
    contexts = [_scored(seed) for seed in range(6)]
    truth = [np.array([0.9, 0.3, 0.6])] * 6  # what fine-tuning gave on six past tasks
    model = MetaSelector.fit([feature_frame(c) for c in contexts], truth, [f"task{i}" for i in range(6)], seed=0,
                             n_estimators=50, coverage=0.9)  # fmt: skip
    new = _scored(7)
    ranking = model.predict(new)
    assert np.argmax(ranking.score) == 0 and np.argmin(ranking.score) == 1
    assert (ranking.lower <= ranking.score).all() and (ranking.score <= ranking.upper).all()
    assert (ranking.lower >= 0).all() and (ranking.upper <= 1).all()
    model.save(tmp_path / "meta")
    loaded = MetaSelector.load(tmp_path / "meta")
    assert np.allclose(loaded.predict(new).score, ranking.score) and loaded.half_width == model.half_width
    new.meta_selector = loaded
    assert np.allclose(SELECTORS.get("meta").rank(new).score, ranking.score)
    with pytest.raises(MetahpoError, match="holds no meta-learned selector"):
        MetaSelector.load(tmp_path / "absent")


def test_head_only_fine_tuning_changes_the_head_alone_batchnorm_included():
    from metahpo.models.cnn import SmallCNN

    torch.manual_seed(0)
    model = HeadOnly(SmallCNN(1, 4, 0.0, 3), "head.2")
    before = copy.deepcopy(model.model.state_dict())
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(x=torch.randn(8, 1, 8, 8)), torch.randint(0, 3, (8,)))
    loss.backward()
    optimizer.step()
    after = model.model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"head.2.weight", "head.2.bias"}  # running BatchNorm statistics too stay as pretrained


def _selection_raw() -> dict:
    return yaml.safe_load(TINY.read_text())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update(selectors=["logme", "oracle"]), "unknown selector(s) ['oracle']"),
        (lambda s: s["pool"]["cnn_04"]["config"].pop("filters"), "selection.pool.cnn_04.config: has"),
        (lambda s: s["pool"]["cnn_04"].update(dataset="nowhere"), "selection.pool.cnn_04.dataset: 'nowhere' is not under datasets"),
        (lambda s: s["pool"]["cnn_04"].update(dataset=None), "cnn is not pretrained"),
        (lambda s: s["pool"]["cnn_04_head"].update(weights_of="mlp_04"), "must be an earlier member"),
        (lambda s: s["pool"]["cnn_04"].update(family="bidaf"), "pool members are classifiers"),
        (lambda s: s["targets"]["digits_89"].update(dataset="nowhere"), "selection.targets.digits_89.dataset"),
        (lambda s: s["finetune"].update(lr={"cnn": 0.1}), "needs a 'default' entry"),
        (lambda s: s["pool"]["cnn_04"].update(options={"width": 3}), "selection.pool.cnn_04.options.width: unknown key"),
    ],
)
def test_bad_selection_params_are_refused_naming_the_key(edit, message):
    raw = _selection_raw()
    edit(raw["selection"])
    with pytest.raises(ParamsError) as error:
        validate_params(raw)
    assert message in str(error.value)


@pytest.fixture(scope="module")
def tiny_selection(tmp_path_factory):
    """The tiny profile's pool, ground truth and selection, run in-process in a fresh folder."""
    from metahpo.stages import run_stage

    root = tmp_path_factory.mktemp("selection")
    (root / "params.yaml").write_text(TINY.read_text())
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for dataset in _selection_raw()["datasets"]:  # the stages check every dataset they depend on
            run_stage("download", "params.yaml", dataset)
            run_stage("metafeatures", "params.yaml", dataset)
        for stage in ("pool", "pool_finetune", "selection"):
            run_stage(stage, "params.yaml")
    finally:
        os.chdir(cwd)
    return root


@pytest.mark.slow  # three small trainings, nine fine-tunings, two draws per target: ~40 s
def test_tiny_selection_stages_record_truth_and_score_every_selector(tiny_selection):
    raw = _selection_raw()["selection"]
    truth = pd.read_parquet(tiny_selection / "results/pool_finetune/truth.parquet")
    assert len(truth) == len(raw["targets"]) * len(raw["pool"]) and (truth["state"] == "ok").all()
    assert truth["truth"].between(0, 1).all()
    draws = pd.read_parquet(tiny_selection / "results/selection/draws.parquet")
    assert set(draws["selector"]) == set(raw["selectors"])
    assert len(draws) == len(raw["selectors"]) * len(raw["targets"]) * raw["redraws"]
    summary = json.loads((tiny_selection / "results/selection/summary.json").read_text())
    meta = next(row for row in summary["table"] if row["selector"] == "meta")
    assert 0 <= meta["coverage"] <= 1 and meta["abs_error"] >= 0
    assert {row["target"] for row in summary["compute"]} == set(raw["targets"])
    assert all(row["pool_seconds"] > 0 and row["speedup"] > 0 for row in summary["compute"])
    # the stages read the prepared datasets and never write into them (another stage's output)
    assert not list((tiny_selection / "results/data").rglob("cache-*")), "datasets wrote cache files into results/data"
    descriptor = json.loads((tiny_selection / "results/pool/members/cnn_04_head/member.json").read_text())
    assert descriptor["variant_of"] == "cnn_04" and descriptor["weights"] == "cnn_04/model.safetensors"
    assert descriptor["source"]["classes"] == ["0", "1", "2", "3", "4"] and descriptor["parameters"] > 0


@pytest.mark.slow
def test_ground_truth_resumes_from_its_log_and_retrains_nothing(tiny_selection, monkeypatch):
    from metahpo.stages import pool_finetune, run_stage

    calls = []
    monkeypatch.setattr(pool_finetune, "finetune", lambda *a, **k: calls.append(a) or None)
    monkeypatch.chdir(tiny_selection)
    before = pd.read_parquet("results/pool_finetune/truth.parquet")
    run_stage("pool_finetune", "params.yaml")
    assert calls == []  # every fine-tuning is in the log
    pd.testing.assert_frame_equal(pd.read_parquet("results/pool_finetune/truth.parquet"), before)


@pytest.mark.slow
def test_cli_select_ranks_the_pool_and_refuses_bad_input_writing_nothing(tiny_selection, capsys, monkeypatch):
    from metahpo.cli import main

    monkeypatch.chdir(tiny_selection)
    before = sorted(p for p in Path(".").rglob("*") if p.is_file())
    assert main(["select", "--dataset", "digits", "--classes", "5,6,7", "--shots", "12"]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 pool members serve digits" in out and "predicted fine-tuned metric" in out
    ranked = [line.split()[1] for line in out.splitlines() if line.strip()[:2].rstrip(".").isdigit()]
    assert sorted(ranked) == ["cnn_04", "cnn_04_head", "mlp_04"]

    for argv, message in [
        (["--dataset", "wine"], "no pool member serves a classification task on tabular data"),
        (["--dataset", "digits", "--classes", "5,6", "--shots", "500"], "fewer than shots = 500"),
        (["--dataset", "digits", "--pool", "results"], "is not a model pool"),
        (["--dataset", "digits", "--selector", "oracle"], "unknown selector 'oracle'"),
    ]:
        assert main(["select", *argv]) == 2
        assert message in capsys.readouterr().err
    weights = Path("results/pool/members/mlp_04/model.safetensors")
    saved = weights.read_bytes()
    try:
        weights.write_bytes(saved[: len(saved) // 2])
        assert main(["select", "--dataset", "digits", "--shots", "20", "--classes", "0,1"]) == 2
        assert "pool member mlp_04: cannot load its weights" in capsys.readouterr().err
    finally:
        weights.write_bytes(saved)
    assert sorted(p for p in Path(".").rglob("*") if p.is_file()) == before
