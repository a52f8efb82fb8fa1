"""SQuAD v2 evaluation, as the official script ``evaluate-v2.0.py`` computes it.

Same normalisation (lower case, punctuation removed, articles a/an/the removed, whitespace
collapsed), same token-level F1 and exact match, maximum over the gold answers, and an unanswerable
question scored against the single gold answer ``""`` (EM and F1 are 1 iff the prediction is empty
after normalisation). Two differences, both deliberate:

- scores are **fractions in [0, 1]**, not the official percentages (every metahpo metric is);
- every key is always present (a fixed sweep-table schema): ``HasAns_*`` / ``NoAns_*`` exact and F1
  are NaN when the split has no question of that kind (the official script omits them), and a
  missing prediction raises ``ValueError`` (the official script cannot score it either).

No no-answer probability threshold is applied (the official default without ``--na-prob-file``).
"""

from __future__ import annotations

import collections
import re
import string
from typing import Mapping, Sequence

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, remove punctuation, remove articles, collapse whitespace (official order)."""
    text = text.lower()
    text = "".join(char for char in text if char not in PUNCTUATION)
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


def get_tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def compute_exact(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    """Token-overlap F1 of the normalised bags of words; an empty side scores 1 iff both are empty."""
    gold_tokens, predicted_tokens = get_tokens(gold), get_tokens(prediction)
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    shared = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(predicted_tokens)
    recall = shared / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: Sequence[str]) -> list[str]:
    """The official script's gold list: answers that normalise to nothing are dropped, and an
    unanswerable question (nothing left) has the single gold answer ``""``."""
    return [answer for answer in answers if normalize_answer(answer)] or [""]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def squad_v2_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """SQuAD v2 scores of ``predictions`` (question id -> answer text, ``""`` = unanswerable) against
    ``references`` (question id -> gold answer texts, an empty list = unanswerable).

    Returns exact, f1, total, HasAns_exact, HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1,
    NoAns_total; exact and F1 as fractions in [0, 1], totals as counts (floats).
    """
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} of {len(references)} questions, e.g. {missing[:3]}")
    exact: dict[str, list[float]] = {"all": [], "HasAns": [], "NoAns": []}
    f1: dict[str, list[float]] = {"all": [], "HasAns": [], "NoAns": []}
    for qid, answers in references.items():
        golds = gold_answers(answers)
        prediction = predictions[qid]
        kind = "HasAns" if len(answers) > 0 else "NoAns"  # official: bool(qa["answers"])
        for group in ("all", kind):
            exact[group].append(max(compute_exact(gold, prediction) for gold in golds))
            f1[group].append(max(compute_f1(gold, prediction) for gold in golds))
    return {
        "exact": _mean(exact["all"]),
        "f1": _mean(f1["all"]),
        "total": float(len(exact["all"])),
        "HasAns_exact": _mean(exact["HasAns"]),
        "HasAns_f1": _mean(f1["HasAns"]),
        "HasAns_total": float(len(exact["HasAns"])),
        "NoAns_exact": _mean(exact["NoAns"]),
        "NoAns_f1": _mean(f1["NoAns"]),
        "NoAns_total": float(len(exact["NoAns"])),
    }
