"""Entity-level metrics for token classification (NER), through seqeval's strict IOB2 mode.

Strict mode, not CoNLL's ``conlleval`` (seqeval's default mode): an entity is a well-formed IOB2
span, ``B-X`` followed by any number of ``I-X``, and it counts only when its type, start and end all
match a gold entity. Our datasets are IOB2 by contract (docs/ARCHITECTURE.md), so every gold entity
is well formed; strict mode scores predictions by the same rule. ``conlleval`` instead repairs
ill-formed predictions: an ``I-X`` without a ``B-X`` (or after an entity of another type) opens a new
entity there, so a model that never learnt where entities begin still gets credit. The numbers here
are therefore at most as high as ``conlleval``'s on the same predictions (equal when every
predicted sequence is valid IOB2, as a CRF's usually are).

Degenerate splits: when nothing is predicted, precision is 1.0 if there was also nothing to find,
else 0.0; recall likewise when there is nothing to find. A model that predicts no entity thus scores
F1 0 on a split with entities, and 1.0 on a split without any (where it is exactly right).
"""

from __future__ import annotations

from seqeval.metrics import accuracy_score
from seqeval.scheme import IOB2, Entities


def _entity_set(sequences: list[list[str]], which: str) -> set[tuple[int, str, int, int]]:
    """Every strict IOB2 entity as ``(sentence, type, start, end)``."""
    try:
        entities = Entities(sequences, IOB2)
    except KeyError as err:  # seqeval's message is just the bad prefix
        raise ValueError(f"{which} tags are not IOB2 (O, B-X or I-X): unknown prefix {err}") from None
    return {entity.to_tuple() for sentence in entities.entities for entity in sentence}


def entity_metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1 (strict IOB2) and token-level accuracy.

    ``gold`` and ``predicted`` hold one tag sequence per sentence, of equal lengths.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {index}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted"
            )
    gold_entities = _entity_set(gold, "gold")
    predicted_entities = _entity_set(predicted, "predicted")
    correct = len(gold_entities & predicted_entities)
    precision = correct / len(predicted_entities) if predicted_entities else float(not gold_entities)
    recall = correct / len(gold_entities) if gold_entities else float(not predicted_entities)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tokens = sum(len(tags) for tags in gold)
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        # seqeval's accuracy divides by the token count: 0/0 on a split of empty sentences
        "accuracy": float(accuracy_score(gold, predicted)) if tokens else 1.0,
    }
