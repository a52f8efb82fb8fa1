"""What the few-shot stages (meta_init, fewshot_eval) read alike: the class pool, its meta splits, the inner loop."""

from __future__ import annotations

from pathlib import Path

from metahpo.fewshot.episodes import EpisodeSampler, load_pool, split_classes
from metahpo.fewshot.methods import Inner
from metahpo.search_space import stable_seed


def fewshot_problem(fewshot, data_root):
    """(pool, class indices per meta split) of the params' ``fewshot`` section, from results/data/."""
    pool = load_pool({name: Path(data_root, name) for name in fewshot.datasets}, fewshot.image_size)
    return pool, split_classes(pool, fewshot.split.by, fewshot.split.validation, fewshot.split.test)


def inner_settings(fewshot) -> Inner:
    train = fewshot.meta_train
    return Inner(lr=train.inner_lr, train_steps=train.inner_steps, steps=fewshot.evaluate.steps,
                 second_order=train.second_order)  # fmt: skip


def sampler(pool, splits, split: str, ways: int, shots: int, queries: int, seed: int, rotations: bool = False):
    """The seeded sampler of one meta split and problem: the same episodes for every method."""
    return EpisodeSampler(pool, splits[split], ways, shots, queries, stable_seed(seed, "fewshot", split, ways, shots),
                          rotations=rotations, split=split)  # fmt: skip
