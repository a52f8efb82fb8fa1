"""entity_metrics on hand-worked examples (strict IOB2, see metahpo.metrics.entities)."""

from __future__ import annotations

import pytest
from seqeval.metrics import f1_score as conlleval_f1

from metahpo.metrics import entity_metrics

# "John Smith lives in New York City": PER (words 0-1) and LOC (words 4-6).
GOLD = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC"]


def test_one_exact_entity_one_wrong_boundary_one_spurious():
    # PER exact; LOC cut one word short ("New York"); "lives" predicted as MISC.
    predicted = ["B-PER", "I-PER", "B-MISC", "O", "B-LOC", "I-LOC", "O"]
    # predicted entities: PER (correct), MISC (wrong), LOC 4-5 (wrong boundary) -> 1 of 3
    # gold entities: PER (found), LOC 4-6 (missed) -> 1 of 2
    # F1 = 2 * 1/3 * 1/2 / (1/3 + 1/2) = (1/3) / (5/6) = 0.4
    # tokens: "lives" and "City" wrong -> 5 of 7
    metrics = entity_metrics([GOLD], [predicted])
    assert metrics == pytest.approx({"precision": 1 / 3, "recall": 1 / 2, "f1": 0.4, "accuracy": 5 / 7})


def test_wrong_boundary_alone_halves_precision_and_recall():
    predicted = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    metrics = entity_metrics([GOLD], [predicted])
    assert metrics == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 6 / 7})


def test_micro_average_over_sentences():
    # sentence 1: both found; sentence 2: its one entity missed -> 2 of 3 found, 2 of 2 predicted right
    gold = [GOLD, ["B-ORG", "O"]]
    predicted = [GOLD, ["O", "O"]]
    metrics = entity_metrics(gold, predicted)
    assert metrics == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "accuracy": 8 / 9})


def test_inside_tag_without_begin_is_no_entity_in_strict_mode():
    gold = [["O", "B-ORG", "I-ORG"]]
    predicted = [["O", "I-ORG", "I-ORG"]]
    metrics = entity_metrics(gold, predicted)
    # strict IOB2: "I-ORG I-ORG" is ill-formed, so nothing was predicted -> no credit at all
    assert metrics == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 2 / 3})
    # conlleval (seqeval's default mode) would open the entity at the first I-ORG and count it right
    assert conlleval_f1(gold, predicted) == 1.0


def test_type_change_inside_an_entity_is_not_a_match():
    gold = [["B-PER", "I-PER"]]
    predicted = [["B-PER", "I-LOC"]]
    # strict: B-PER alone is a one-word PER (wrong end); I-LOC without B-LOC is no entity
    metrics = entity_metrics(gold, predicted)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (0.0, 0.0, 0.0)


def test_all_outside_is_perfect_when_predicted_so():
    gold = [["O", "O", "O"], ["O"]]
    assert entity_metrics(gold, gold) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}


def test_entity_predicted_where_there_is_none():
    metrics = entity_metrics([["O", "O"]], [["B-PER", "O"]])
    assert metrics == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.5})


def test_nothing_predicted_where_entities_exist():
    metrics = entity_metrics([GOLD], [["O"] * len(GOLD)])
    # only "lives" and "in" are O in the gold -> 2 of 7 tokens right
    assert metrics == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 2 / 7})


def test_gold_as_prediction_is_perfect():
    gold = [GOLD, ["B-ORG", "O"], [], ["O"]]
    assert entity_metrics(gold, gold) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}


@pytest.mark.parametrize(
    ("gold", "predicted", "message"),
    [
        ([["O"]], [], "1 gold sentences but 0 predicted"),
        ([["O", "O"]], [["O"]], "sentence 0: 2 gold tags but 1 predicted"),
        ([["O"]], [["X-PER"]], "predicted tags are not IOB2"),
    ],
)
def test_malformed_input_is_rejected(gold, predicted, message):
    with pytest.raises(ValueError, match=message):
        entity_metrics(gold, predicted)
