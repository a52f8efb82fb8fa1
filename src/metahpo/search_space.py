"""A family's search space (params ``families.<entry>.space``): its grid, random draws, log flags, seeds.

- ``grid_configs``: the seed grid, the one enumeration the sweep, fit_meta and tune share;
- ``random_configs`` / ``planned_trials``: the sweep's seeded random draws and its trials in order;
- ``declared_log_scale``: the log flags the space declares (``sample: loguniform`` -> log10,
  ``uniform`` -> linear); a ``choice`` hyperparameter declares nothing about its scale, so the
  meta-dataset's span rule decides it (docs/META_DATASET.md, "Encoding").

``space`` maps a name to anything with ``values`` and ``sample`` (``metahpo.config.HyperparameterSpace``).
"""

from __future__ import annotations

import itertools
import math
import random
import zlib
from typing import Any, Mapping

Space = Mapping[str, Any]  # hyperparameter -> its HyperparameterSpace (values, sample)


def grid_configs(space: Space) -> list[dict[str, Any]]:
    """Every grid point: the product over hyperparameters in the space's order, values as listed."""
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n].values for n in names))]


def _draw(rng: random.Random, spec) -> int | float:
    if spec.sample == "choice":
        return rng.choice(spec.values)
    low, high = min(spec.values), max(spec.values)
    if spec.sample == "uniform":
        value = rng.uniform(low, high)
    else:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        value = min(max(value, low), high)  # exp(log(x)) can leave [low, high] by an ulp
    if all(isinstance(v, int) for v in spec.values):
        return min(max(round(value), low), high)
    return value


def random_configs(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random configs; the same seed draws the same configs."""
    rng = random.Random(seed)
    return [{name: _draw(rng, spec) for name, spec in space.items()} for _ in range(n)]


def stable_seed(*parts: Any) -> int:
    """A seed from its parts that is the same in every process (Python's hash() is salted)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode("utf-8")) & 0x7FFFFFFF


def planned_trials(task: str, space: Space, grid: bool, random_trials: int, seed: int) -> list[dict[str, Any]]:
    """A task's sweep trials in run order: trial_id, search, seed and config each."""
    plan = []
    if grid:
        plan += [("grid", i, c) for i, c in enumerate(grid_configs(space))]
    randoms = random_configs(space, random_trials, stable_seed(seed, task, "random"))
    plan += [("random", i, c) for i, c in enumerate(randoms)]
    trials = []
    for search, index, config in plan:
        trial_id = f"{search}-{index:04d}"
        trials.append(
            {"trial_id": trial_id, "search": search, "seed": stable_seed(seed, task, trial_id), "config": config}
        )
    return trials


def declared_log_scale(space: Space) -> dict[str, bool]:
    """name -> True (loguniform) / False (uniform); choice hyperparameters are left out."""
    declared = {"loguniform": True, "uniform": False}
    return {name: declared[spec.sample] for name, spec in space.items() if spec.sample in declared}
