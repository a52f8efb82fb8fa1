"""Deterministic carving and subsampling of row indices: label-stratified for classification.

Everything here works on integer labels and index arrays only, so it runs before any image is
decoded. Tasks without one class label per row (extractive QA, token classification) pass no
labels (None): every row is kept (unanswerable questions included) and each pick is the first n
of a seeded random permutation of the candidate rows. Each random choice gets its own seed derived
from ``params.seed`` and a purpose string, so changing one choice (say max_train) does not
reshuffle another (the carved test split).
"""

from __future__ import annotations

import hashlib

import numpy as np

from metahpo.errors import DataError

VALIDATION_ALIASES = {"validation": "validation", "valid": "validation", "val": "validation", "dev": "validation"}
CANONICAL_SPLITS = ("train", "validation", "test")


def derive_seed(seed: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def pick(indices: np.ndarray, labels: np.ndarray | None, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (n picked, the rest), both sorted; stratified by label when there are
    labels and stratification is possible, else a seeded random permutation."""
    from sklearn.model_selection import train_test_split

    if n >= len(indices):
        return np.sort(indices), indices[:0]
    if labels is None:
        order = np.random.default_rng(seed).permutation(indices)
        return np.sort(order[:n]), np.sort(order[n:])
    try:
        chosen, rest = train_test_split(indices, train_size=n, stratify=labels, random_state=seed)
    except ValueError:
        # a class with a single row, or fewer picks than classes: stratification is impossible
        chosen, rest = train_test_split(indices, train_size=n, random_state=seed)
    return np.sort(chosen), np.sort(rest)


def carve(
    split_sizes: dict[str, int],
    labels_by_split: dict[str, np.ndarray] | None,
    test_fraction: float,
    validation_fraction: float,
    seed: int,
    dataset: str,
) -> tuple[dict[str, tuple[str, np.ndarray]], list[str]]:
    """Give each canonical split a (source split, source row indices) pair; return it and the carved names.

    Existing splits are kept whole. Missing ones are carved from train (or, without train, from the
    largest split), test first, then validation; fractions are of the carved-from split's rows.
    ``labels_by_split`` None: no class label (QA, token classification), unstratified seeded picks.
    """
    if labels_by_split is None:
        present = {name: np.arange(size) for name, size in split_sizes.items() if size}
    else:
        # rows labelled -1 (the Hub's "no label", e.g. an unlabelled test split) are dropped
        present = {name: np.flatnonzero(labels >= 0) for name, labels in labels_by_split.items()}
        present = {name: rows for name, rows in present.items() if len(rows)}
    if not present:
        what = "rows" if labels_by_split is None else "labelled rows"
        raise DataError(f"{dataset} has no {what} in any split: pick another dataset")
    # without train, the largest split is the pool that train (and whatever else is missing) comes from
    pool_split = "train" if "train" in present else max(present, key=lambda name: len(present[name]))
    pool_size = len(present[pool_split])
    assignment = {name: (name, rows) for name, rows in present.items() if name != pool_split}
    pool = present[pool_split]
    fractions = {"test": test_fraction, "validation": validation_fraction}
    carved = []
    for name in ("test", "validation"):
        if name in assignment:
            continue
        n = max(1, int(round(fractions[name] * pool_size)))
        if n >= len(pool):
            raise DataError(
                f"{dataset}: split {pool_split!r} has {pool_size} rows, too few to carve {name} from: "
                "pick a larger dataset"
            )
        pool_labels = None if labels_by_split is None else labels_by_split[pool_split][pool]
        chosen, pool = pick(pool, pool_labels, n, derive_seed(seed, f"carve-{name}"))
        assignment[name] = (pool_split, chosen)
        carved.append(name)
    assignment["train"] = (pool_split, pool)
    if pool_split != "train":
        carved.append("train")
    return assignment, carved


def subsample(rows: np.ndarray, labels: np.ndarray | None, limit: int | None, seed: int, split: str) -> np.ndarray:
    """At most ``limit`` of ``rows`` (sorted), stratified by label (``labels`` indexed by source row) when
    given; all rows when no limit."""
    if limit is None or len(rows) <= limit:
        return rows
    chosen, _ = pick(rows, None if labels is None else labels[rows], limit, derive_seed(seed, f"subsample-{split}"))
    return chosen
