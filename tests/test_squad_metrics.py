"""SQuAD v2 metrics against hand-worked examples (the official evaluate-v2.0.py rules)."""

from __future__ import annotations

import math

import pytest

from metahpo.metrics import squad_v2_metrics
from metahpo.metrics.squad import compute_exact, compute_f1, get_tokens, gold_answers, normalize_answer


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("The  Quick, brown-fox!", "quick brownfox"),  # punctuation goes before articles and spaces
        ("An apple a day", "apple day"),
        ("Theatre and anthem", "theatre and anthem"),  # articles only as whole words
        ("  A.  ", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_get_tokens():
    assert get_tokens("The cat, the HAT") == ["cat", "hat"]
    assert get_tokens("") == []


def test_exact_ignores_case_articles_and_punctuation():
    assert compute_exact("the Eiffel Tower", "Eiffel tower.") == 1
    assert compute_exact("Eiffel Tower", "Eiffel") == 0


def test_partial_overlap_f1_by_hand():
    # gold tokens [cat, sat, on, mat], predicted [cat, on, chair]: 2 shared,
    # precision 2/3, recall 2/4, F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert compute_f1("the cat sat on the mat", "cat on a chair") == pytest.approx(4 / 7)
    # repeated tokens count as a multiset: gold [new, york, new], predicted [new, new] -> P 1, R 2/3, F1 0.8
    assert compute_f1("New York new", "new new") == pytest.approx(0.8)
    assert compute_f1("Paris", "London") == 0.0


def test_unanswerable_scores_one_only_for_an_empty_prediction():
    assert gold_answers([]) == [""]
    assert compute_exact("", "") == 1 and compute_f1("", "") == 1.0
    assert compute_exact("", "France") == 0 and compute_f1("", "France") == 0.0
    assert compute_f1("France", "") == 0.0
    # a prediction that normalises to nothing counts as empty
    assert compute_f1("", "the.") == 1.0


def test_max_over_gold_answers():
    metrics = squad_v2_metrics({"q": "Denver"}, {"q": ["Denver Broncos", "Broncos", "the Broncos"]})
    # exact matches none; F1 against "Denver Broncos" = 2 * 1 * 1/2 / 1.5 = 2/3, against "Broncos" 0
    assert metrics["exact"] == 0.0
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert squad_v2_metrics({"q": "the Broncos!"}, {"q": ["Denver Broncos", "Broncos"]})["exact"] == 1.0


def test_has_answer_and_no_answer_split():
    references = {
        "right": ["France"],
        "partial": ["the cat sat on the mat"],
        "null_right": [],
        "null_wrong": [],
    }
    predictions = {"right": "france", "partial": "cat on a chair", "null_right": "", "null_wrong": "Normandy"}
    metrics = squad_v2_metrics(predictions, references)
    assert metrics == pytest.approx(
        {
            "exact": 2 / 4,
            "f1": (1 + 4 / 7 + 1 + 0) / 4,
            "total": 4.0,
            "HasAns_exact": 1 / 2,
            "HasAns_f1": (1 + 4 / 7) / 2,
            "HasAns_total": 2.0,
            "NoAns_exact": 1 / 2,
            "NoAns_f1": 1 / 2,
            "NoAns_total": 2.0,
        }
    )


def test_gold_that_normalises_to_nothing_still_counts_as_has_answer():
    # official: the gold list drops "the" and falls back to [""], but the question stays in HasAns
    metrics = squad_v2_metrics({"q": ""}, {"q": ["the"]})
    assert metrics["HasAns_total"] == 1.0 and metrics["HasAns_exact"] == 1.0 and metrics["NoAns_total"] == 0.0


def test_every_key_present_with_nan_for_an_empty_group():
    metrics = squad_v2_metrics({"a": "x"}, {"a": ["x"]})
    assert math.isnan(metrics["NoAns_exact"]) and math.isnan(metrics["NoAns_f1"])
    assert metrics["NoAns_total"] == 0.0 and metrics["exact"] == 1.0


def test_missing_prediction_is_an_error():
    with pytest.raises(ValueError, match="no prediction for 1 of 2"):
        squad_v2_metrics({"a": "x"}, {"a": ["x"], "b": []})
