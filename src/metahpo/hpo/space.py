"""A family's declared search space (params.yaml ``families.<name>.space``), read by duck typing.

- ``grid_configs``: the seed grid, the one enumeration the sweep, fit_meta and tune share;
- ``declared_log_scale``: the log flags the space declares (``sample: loguniform`` -> log10,
  ``uniform`` -> linear); a ``choice`` hyperparameter declares nothing about its scale, so the
  meta-dataset's span rule decides it (docs/META_DATASET.md, "Encoding").

``space`` maps a name to anything with ``values`` and ``sample`` (``metahpo.config.HyperparameterSpace``).
The sweep stage enumerates its grid here too, so this module imports nothing of metahpo (the sweep's
code dependencies stay this file, not the hpo folder).
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping


def grid_configs(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every grid point: the product over hyperparameters in the space's order, values as listed."""
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*(space[n].values for n in names))]


def declared_log_scale(space: Mapping[str, Any]) -> dict[str, bool]:
    """name -> True (loguniform) / False (uniform); choice hyperparameters are left out."""
    declared = {"loguniform": True, "uniform": False}
    return {name: declared[spec.sample] for name, spec in space.items() if spec.sample in declared}
