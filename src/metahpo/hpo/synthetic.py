"""A synthetic meta-dataset with known structure, for tests and the replay benchmark.

Every task shares one pool of configurations on a grid over three hyperparameters (``hp.lr``
log-scale 1e-4..1e-1, ``hp.width`` 8..1024 on a log2 grid, ``hp.dropout`` 0..0.5). A task has one
informative meta-feature ``mf.m`` in [-1, 1] and one irrelevant ``mf.noise``. Its objective is a
smooth bump whose centre moves with m (``bump_center``), plus seeded Gaussian noise:

    objective = floor + height * exp(-|(u - center(m)) / width|^2 / 2) + noise

where u is the configuration encoded to [0, 1] per hyperparameter (log10 for lr and width), exactly
as ``metadataset.from_frame`` encodes it. So a strategy that learns "the best region follows m" from
the prior tasks has a real head start; one that ignores the prior does not.

With ``categorical=True`` every grid point comes with each of six activations (``hp.activation``,
strings), and the bump is scaled by the activation's factor (``activation_effect``): a smooth trend
along the sorted order, broken by the best one (relu for m < 0, swish for m >= 0) between two bad
neighbours. In the order an integer encoding gives them (alphabetical, 0..5) the pattern is
non-monotone and which activation is best depends on m: a model that reads the activation as an
ordered number is misled (a smooth trend fits most of it, and the lone peak between two bad
neighbours looks like noise); one that reads it as a category (one-hot) is not.

Optional: ``cost`` (seconds, growing with width), ``curve`` (per-epoch values saturating toward the
objective; a higher lr converges faster), failed rows (NaN objective), and direction="min" (the
objective becomes an error, 1 - accuracy, curves too).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from metahpo.hpo.metadataset import HP_PREFIX, MF_PREFIX

LR_RANGE = (1e-4, 1e-1)
WIDTH_RANGE = (8, 1024)  # >= two decades, so from_frame log-encodes it like lr
DROPOUT_RANGE = (0.0, 0.5)
BUMP_WIDTH = np.array([0.18, 0.25, 0.35])  # per encoded hyperparameter: lr matters most, dropout least
ACTIVATIONS = ("elu", "gelu", "relu", "selu", "swish", "tanh")  # sorted: an integer code is the position


def activation_effect(m: float) -> np.ndarray:
    """Per activation (``ACTIVATIONS`` order), the factor on the bump: a gentle trend along the order
    (0.3 to 0.7), except the best one (1.0: relu for m < 0, swish for m >= 0) and its two neighbours (0.05)."""
    effect = np.linspace(0.3, 0.7, len(ACTIVATIONS))
    best = ACTIVATIONS.index("relu" if m < 0 else "swish")
    effect[best - 1] = effect[best + 1] = 0.05
    effect[best] = 1.0
    return effect


def bump_center(m: float) -> np.ndarray:
    """The encoded optimum of a task with meta-feature m: lr up and width down as m grows."""
    return np.array([0.5 + 0.35 * m, 0.5 - 0.3 * m, 0.3 + 0.1 * m])


def config_grid(n_configs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_configs`` distinct points of a regular grid on [0, 1]^3 (encoded), shared by every task.

    The grid has the fewest levels per axis that hold ``n_configs`` points; when it holds more, a
    seeded subset is kept (without replacement, sorted back into grid order).
    """
    levels = max(2, math.ceil(n_configs ** (1 / 3)))
    axis = np.linspace(0.0, 1.0, levels)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    keep = np.sort(rng.choice(len(grid), n_configs, replace=False))
    return grid[keep]


def decode(encoded: np.ndarray) -> pd.DataFrame:
    """Encoded [0, 1]^3 -> recorded hyperparameter values (the hp.<name> columns)."""
    lr = 10 ** (np.log10(LR_RANGE[0]) + encoded[:, 0] * (np.log10(LR_RANGE[1]) - np.log10(LR_RANGE[0])))
    width = np.rint(2 ** (np.log2(WIDTH_RANGE[0]) + encoded[:, 1] * (np.log2(WIDTH_RANGE[1]) - np.log2(WIDTH_RANGE[0]))))
    dropout = DROPOUT_RANGE[0] + encoded[:, 2] * (DROPOUT_RANGE[1] - DROPOUT_RANGE[0])
    return pd.DataFrame({f"{HP_PREFIX}lr": lr, f"{HP_PREFIX}width": width, f"{HP_PREFIX}dropout": dropout})


def make_synthetic(
    n_tasks: int,
    n_configs: int,
    seed: int = 0,
    noise: float = 0.01,
    n_epochs: int = 0,
    with_cost: bool = True,
    failure_rate: float = 0.0,
    direction: str = "max",
    categorical: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(meta-dataset table, meta-features table) in the schema of docs/META_DATASET.md.

    ``categorical``: add ``hp.activation`` (module docstring); the pool is then ``n_configs // 6``
    grid points, each with every activation.

    ``n_epochs`` > 0 adds a ``curve`` column of that many per-epoch values (the last equals the
    objective); ``failure_rate`` is the fraction of rows recorded as failed (NaN objective, empty
    curve). The objective is an accuracy-like score in (0, 1) for "max", its error for "min".
    """
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be max or min, not {direction!r}")
    rng = np.random.default_rng(seed)
    encoded = config_grid(n_configs // len(ACTIVATIONS) if categorical else n_configs, rng)
    hyperparameters = decode(encoded)
    activation = np.zeros(len(encoded), dtype=int)
    if categorical:  # every grid point with every activation
        activation = np.tile(np.arange(len(ACTIVATIONS)), len(encoded))
        encoded = np.repeat(encoded, len(ACTIVATIONS), axis=0)
        hyperparameters = hyperparameters.loc[hyperparameters.index.repeat(len(ACTIVATIONS))].reset_index(drop=True)
        hyperparameters[f"{HP_PREFIX}activation"] = np.array(ACTIVATIONS, dtype=object)[activation]
    n_configs = len(encoded)
    # evenly spread meta-features (jittered) so held-out tasks always have neighbours on both sides
    ms = np.clip(np.linspace(-1, 1, n_tasks) + rng.normal(0, 0.05, n_tasks), -1, 1)
    frames, mf_rows = [], []
    for i, m in enumerate(ms):
        task = f"task{i:02d}"
        height = rng.uniform(0.5, 0.7)
        floor = rng.uniform(0.2, 0.3)
        distance = ((encoded - bump_center(m)) / BUMP_WIDTH) ** 2
        factor = activation_effect(m)[activation] if categorical else 1.0
        score = floor + height * factor * np.exp(-distance.sum(axis=1) / 2) + rng.normal(0, noise, n_configs)
        frame = hyperparameters.copy()
        frame.insert(0, "task", task)
        failed = rng.random(n_configs) < failure_rate
        frame["objective"] = np.where(failed, np.nan, score if direction == "max" else 1 - score)
        if with_cost:
            # seconds of a full evaluation: wider nets are slower; tasks differ in size
            frame["cost"] = (0.5 + 2.0 * encoded[:, 1]) * rng.uniform(0.5, 2.0) * max(1, n_epochs)
        if n_epochs > 0:
            frame["curve"] = _curves(score, encoded[:, 0], n_epochs, failed, direction, rng)
        frames.append(frame)
        mf_rows.append({"task": task, f"{MF_PREFIX}m": float(m), f"{MF_PREFIX}noise": float(rng.uniform(-1, 1))})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(mf_rows)


def _curves(
    score: np.ndarray, lr_encoded: np.ndarray, n_epochs: int, failed: np.ndarray, direction: str, rng: np.random.Generator
) -> list[list[float]]:
    """Per-epoch values rising from chance (0.1) toward the final score; high lr saturates sooner."""
    epochs = np.arange(1, n_epochs + 1)
    rate = 0.3 + 1.5 * lr_encoded  # per epoch
    progress = (1 - np.exp(-rate[:, None] * epochs[None, :])) / (1 - np.exp(-rate[:, None] * n_epochs))
    values = 0.1 + (score[:, None] - 0.1) * progress  # ends exactly at the score
    values[:, :-1] += rng.normal(0, 0.005, (len(score), n_epochs - 1))
    if direction == "min":
        values = 1 - values
    return [[] if bad else row.tolist() for row, bad in zip(values, failed)]


def order_encoded(table: pd.DataFrame, column: str = f"{HP_PREFIX}activation") -> pd.DataFrame:
    """The same table with a categorical column replaced by its categories' integer codes (0, 1, ... in sorted order).

    The misleading encoding, to compare against: ``from_frame`` then reads the column as an ordered
    number (linear in [0, 1]) where it would have one-hot encoded the strings.
    """
    codes = {category: code for code, category in enumerate(sorted(table[column].dropna().unique()))}
    return table.assign(**{column: table[column].map(codes).astype(float)})
