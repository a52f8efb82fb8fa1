"""Extractive QA families (bidaf, bert_qa) on real SQuAD v2 rows from the offline mirror."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from metahpo.models import FAMILIES
from metahpo.models.qa import NO_ANSWER, decode_answers
from metahpo.training import train_model

SQUAD = "rajpurkar/squad_v2/data/validation-00000-of-00001.parquet"
INFO = {"dataset": "squad_v2", "task_type": "extractive_qa", "modality": "text"}
ROW_STRIDE = 37  # rows are grouped by article: a stride samples many articles
SPLIT_SIZES = {"train": 40, "validation": 12, "test": 12}  # 64 examples: the file must stay fast
METRIC_KEYS = {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"}


@functools.lru_cache(maxsize=1)
def canonical_squad(path: Path) -> datasets.DatasetDict:
    """A canonical extractive_qa DatasetDict (docs/ARCHITECTURE.md) of disjoint real rows."""
    table = pq.read_table(path, columns=["id", "question", "context", "answers"])
    rows = datasets.Dataset(table).select(range(0, table.num_rows, ROW_STRIDE))
    splits, start = {}, 0
    for name, size in SPLIT_SIZES.items():
        splits[name] = rows.select(range(start, start + size))
        start += size
    return datasets.DatasetDict(splits)


@pytest.fixture
def squad(mirror) -> datasets.DatasetDict:
    path = mirror / SQUAD
    if not path.is_file():
        pytest.skip(f"{path} not in the offline mirror")
    return canonical_squad(path)


@pytest.fixture
def bidaf_data(squad):
    return prepared("bidaf", squad, {"word_dim": 32, "char_dim": 8, "hidden": 32, "max_context_tokens": 90})


@pytest.fixture
def bert_data(squad):
    return prepared("bert_qa", squad, {"max_length": 128, "doc_stride": 48})


_PREPARED: dict = {}


def prepared(name: str, squad, raw_options: dict):
    """(family, options, PreparedData), prepared once per module: preparing is the slow part."""
    if name not in _PREPARED:
        family = FAMILIES.get(name)
        options = family.options(raw_options)
        _PREPARED[name] = family, options, family.prepare(squad, INFO, options)
    return _PREPARED[name]


def gold_texts_from_labels(split) -> list[tuple[str, str]]:
    """(text the label span covers, first gold answer) for every window labelled answerable."""
    extra = split.extra
    pairs = []
    for window, (start, end) in enumerate(split.labels.tolist()):
        if start == NO_ANSWER:
            continue
        example = int(extra["window_example"][window])
        context = extra["contexts"][example]
        covered = context[extra["offsets"][window, start, 0] : extra["offsets"][window, end, 1]]
        pairs.append((covered, extra["answers"][example][0]))
    return pairs


@pytest.mark.parametrize("data_fixture", ["bidaf_data", "bert_data"])
def test_prepare_keeps_examples_and_labels_map_to_answers(data_fixture, squad, request):
    family, _, data = request.getfixturevalue(data_fixture)
    for name in ("train", "validation", "test"):
        split = getattr(data, name)
        assert len(split) == split.labels.shape[0] == len(split.extra["window_example"]) >= len(squad[name])
        assert set(split.extra["window_example"].tolist()) == set(range(len(squad[name])))  # none dropped
        assert split.labels.shape[1] == 2 and (split.labels[:, 0] <= split.labels[:, 1]).all()
        for tensor in split.inputs.values():
            assert tensor.shape[0] == len(split)
    window_example = data.train.extra["window_example"]
    labelled = set(window_example[(data.train.labels[:, 0] != NO_ANSWER).numpy()].tolist())
    answerable = {row for row, answers in enumerate(squad["train"]["answers"]) if answers["text"]}
    past_kept_words = set(answers_past_kept_words(data, squad)) if family.name == "bidaf" else set()
    assert labelled == answerable - past_kept_words  # bert_qa's windows lose no answer
    pairs = gold_texts_from_labels(data.train)
    # a token can be longer than the answer ("Australians" for the gold "Australia"): the label then
    # covers the whole token; most answers start and end on token boundaries
    exact = sum(covered == gold for covered, gold in pairs)
    assert exact >= 0.85 * len(pairs), [pair for pair in pairs if pair[0] != pair[1]]
    assert all(gold in covered for covered, gold in pairs)


def test_bert_qa_long_context_yields_overlapping_windows(bert_data, squad):
    _, options, data = bert_data
    window_example = data.train.extra["window_example"]
    counts = np.bincount(window_example)
    long_example = int(np.argmax(counts))
    assert counts[long_example] >= 2, "no context longer than one 128-token window in the sample"
    windows = np.flatnonzero(window_example == long_example)
    offsets = data.train.extra["offsets"]
    first, second = offsets[windows[0]], offsets[windows[1]]
    first_context = first[first[:, 0] >= 0]
    second_context = second[second[:, 0] >= 0]
    # the next window starts doc_stride tokens before the previous one ended
    overlap = [span for span in second_context.tolist() if span in first_context.tolist()]
    assert len(overlap) == options.doc_stride
    assert second_context[-1, 1] > first_context[-1, 1]
    # an answer is labelled in at most the windows that contain it, and null elsewhere
    assert (data.train.labels[torch.from_numpy(windows)] != 0).any(dim=1).sum() <= len(windows)


def answers_past_kept_words(data, squad) -> list[int]:
    """Train rows whose first gold answer ends after the last context word bidaf kept."""
    last_kept_end = data.train.extra["offsets"][:, -1, 1]  # -1 unless the context filled every kept word
    return [
        row
        for row, answers in enumerate(squad["train"]["answers"])
        if answers["text"] and 0 <= last_kept_end[row] < answers["answer_start"][0] + len(answers["text"][0])
    ]


def test_bidaf_answer_past_the_kept_words_is_a_null_label_but_still_scored(bidaf_data, squad):
    _, options, data = bidaf_data
    assert data.info["truncated"]["train"] > 0
    cut = answers_past_kept_words(data, squad)
    assert cut, f"no answer past word {options.max_context_tokens} in the sample"
    assert (data.train.labels[cut] == NO_ANSWER).all()
    assert all(data.train.extra["answers"][row] for row in cut)  # the gold answers are kept for scoring


@pytest.mark.slow  # 20-35 s each on a CPU
@pytest.mark.parametrize("data_fixture, config", [
    ("bidaf_data", {"lr": 0.005, "batch_size": 8, "dropout": 0.2, "epochs": 1}),
    ("bert_data", {"lr": 5e-5, "batch_size": 8, "dropout": 0.1, "epochs": 1, "warmup_steps": 0}),
])
def test_forward_shapes_and_a_few_steps_reduce_the_loss(data_fixture, config, request):
    family, options, data = request.getfixturevalue(data_fixture)
    torch.manual_seed(0)
    model = family.build(config, data, options)
    optimizer = family.optimizer(model, config)
    inputs, labels = data.train.batch(torch.arange(4))
    start, end = model(**inputs)
    assert start.shape == end.shape and start.shape[0] == 4 and start.shape[1] <= data.train.extra["offsets"].shape[1]
    losses = []
    for _ in range(4):
        loss, _ = family.step(model, inputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.slow  # a whole epoch: 20-85 s each on a CPU
@pytest.mark.parametrize("data_fixture, config", [
    ("bidaf_data", {"lr": 0.005, "batch_size": 32, "dropout": 0.2, "epochs": 1}),
    ("bert_data", {"lr": 5e-5, "batch_size": 16, "dropout": 0.1, "epochs": 1, "warmup_steps": 0}),
])
def test_one_epoch_train_model(data_fixture, config, request):
    family, options, data = request.getfixturevalue(data_fixture)
    result = train_model(family, data, config, epochs=1, seed=0, device="cpu", options=options)
    assert result.ok, result.message
    assert result.metric == "f1" and result.epochs_run == 1
    assert math.isfinite(result.curve_train_loss[0]) and math.isfinite(result.curve_val_loss[0])
    assert METRIC_KEYS <= set(result.test_metrics)
    for key in METRIC_KEYS:
        assert 0.0 <= result.test_metrics[key] <= 1.0, (key, result.test_metrics[key])
    assert result.test_metric == result.test_metrics["f1"]
    assert result.test_metrics["total"] == len(data.test.extra["ids"])


@pytest.mark.parametrize("data_fixture", ["bidaf_data", "bert_data"])
def test_predicting_null_everywhere_scores_only_unanswerable(data_fixture, squad, request):
    family, _, data = request.getfixturevalue(data_fixture)
    split = data.test
    positions = split.extra["offsets"].shape[1]
    start = torch.zeros(len(split), positions)
    start[:, NO_ANSWER] = 10.0  # the no-answer slot wins in every window
    metrics = family.score(split, [(start[:5], start[:5].clone()), (start[5:], start[5:].clone())])
    has_answer = sum(1 for answers in squad["test"]["answers"] if answers["text"])
    assert metrics["HasAns_total"] == has_answer and metrics["NoAns_total"] == len(squad["test"]) - has_answer
    assert metrics["NoAns_exact"] == 1.0 and metrics["NoAns_f1"] == 1.0
    assert metrics["HasAns_exact"] == 0.0 and metrics["HasAns_f1"] == 0.0


def test_decode_best_span_over_windows_against_smallest_null_score():
    context = "alpha beta gamma delta"
    # two windows of one example; positions: 0 = null, then words (offsets), -1 = not context
    offsets = np.array(
        [
            [[-1, -1], [0, 5], [6, 10], [-1, -1]],
            [[-1, -1], [6, 10], [11, 16], [17, 22]],
        ],
        dtype=np.int32,
    )
    start = torch.tensor([[1.0, 0.0, 0.5, 9.0], [3.0, 0.0, 2.0, 0.0]])
    end = torch.tensor([[1.0, 0.0, 0.5, 9.0], [3.0, 0.0, 1.0, 2.5]])
    # window 0 best: "beta" 0.5 + 0.5 = 1 (position 3 is not context); window 1: "gamma delta" 2 + 2.5 = 4.5
    # null scores 2 and 6: the smaller (2) loses to 4.5
    assert decode_answers(start, end, offsets, np.array([0, 0]), [context], max_answer_length=3) == ["gamma delta"]
    # spans longer than max_answer_length are not considered: best is then "gamma" 3 vs null 2
    assert decode_answers(start, end, offsets, np.array([0, 0]), [context], max_answer_length=1) == ["gamma"]
    start[0, 0] = start[1, 0] = 5.0  # null 6 and 8: smallest 6 beats 4.5
    assert decode_answers(start, end, offsets, np.array([0, 0]), [context], max_answer_length=3) == [""]
