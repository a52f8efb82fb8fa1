"""A family's candidate grid: the configurations fit_meta's rankers rank, in the meta-dataset's encoding.

The candidates are the family's seed grid (``metahpo.search_space.grid_configs``), so a recommendation
can always be looked up in a held-out task's grid rows (``rows_in``): its validation score, test
score and seconds are known. The configurations are encoded with the meta-dataset's ``Encoding``, so
the rankers see them exactly as the strategies see a pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from metahpo.errors import MetahpoError
from metahpo.hpo.metadataset import HP_PREFIX, Encoding, TaskData


def _value_key(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_, str)):  # a category is its own key
        return value if isinstance(value, str) else bool(value)
    # grid values go through Parquet as floats; rounding makes 0.1 and 0.1000000001 one key
    return round(float(value), 12)


@dataclass(frozen=True)
class CandidateGrid:
    family: str
    hp_names: tuple[str, ...]
    configs: tuple[dict[str, Any], ...]  # seed order
    default_config: dict[str, Any]
    encoding: Encoding

    @classmethod
    def build(cls, family: str, configs: list[dict[str, Any]], default: dict[str, Any], encoding: Encoding) -> "CandidateGrid":
        return cls(family, tuple(configs[0]) if configs else (), tuple(dict(c) for c in configs), dict(default), encoding)

    @classmethod
    def from_pool(cls, family: str, task: TaskData, default_at: Any) -> "CandidateGrid":
        """A task's pool as the grid (a meta-dataset whose tasks share one pool, e.g. the synthetic one);
        the default is the configuration nearest ``default_at`` in the encoded [0, 1] cube."""
        configs = [{column[len(HP_PREFIX):]: float(v) for column, v in row.items()} for row in task.raw.to_dict("records")]
        default = int(np.argmin(np.abs(task.X - np.asarray(default_at, dtype=float)).sum(axis=1)))
        return cls.build(family, configs, configs[default], task.encoding)

    def __len__(self) -> int:
        return len(self.configs)

    def key(self, config: dict[str, Any]) -> tuple[float, ...]:
        return tuple(_value_key(config[hp]) for hp in self.hp_names)

    def index_of(self, config: dict[str, Any]) -> Optional[int]:
        wanted = self.key(config)
        return next((i for i, candidate in enumerate(self.configs) if self.key(candidate) == wanted), None)

    @property
    def default_index(self) -> int:
        index = self.index_of(self.default_config)
        if index is None:
            raise MetahpoError(f"families.{self.family}.default: {self.default_config} is not a grid point")
        return index

    def frame(self) -> pd.DataFrame:
        """The candidates as a meta-dataset's ``hp.*`` columns (as ``TaskData.raw`` holds them)."""
        frame = pd.DataFrame({f"{HP_PREFIX}{hp}": [c[hp] for c in self.configs] for hp in self.hp_names})
        return self.encoding.raw_values(frame)  # numbers as floats, categories as recorded

    def pool(self, name: str, meta_features: Optional[np.ndarray] = None, y: Optional[np.ndarray] = None) -> TaskData:
        """The candidates as a task's pool (encoded like every task of the meta-dataset)."""
        raw = self.frame()
        return TaskData(name=name, X=self.encoding.encode(raw), raw=raw, meta_features=meta_features, y=y,
                        encoding=self.encoding)  # fmt: skip

    def rows_in(self, task: TaskData) -> np.ndarray:
        """Per candidate, the first row of ``task`` with that configuration; -1 where the task has none."""
        columns = [task.raw[f"{HP_PREFIX}{hp}"].to_numpy(dtype=object) for hp in self.hp_names]
        first: dict[tuple[Any, ...], int] = {}
        for row, values in enumerate(zip(*columns)):
            first.setdefault(tuple(_value_key(v) for v in values), row)
        return np.array([first.get(self.key(c), -1) for c in self.configs], dtype=int)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "hp_names": list(self.hp_names),
            "configs": [dict(c) for c in self.configs],
            "default_config": dict(self.default_config),
            "encoding": self.encoding.to_json(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "CandidateGrid":
        return cls(
            family=raw["family"],
            hp_names=tuple(raw["hp_names"]),
            configs=tuple(dict(c) for c in raw["configs"]),
            default_config=dict(raw["default_config"]),
            encoding=Encoding.from_json(raw["encoding"]),
        )


def configs_json(grid: CandidateGrid, indices: list[int]) -> str:
    return json.dumps([grid.configs[i] for i in indices], sort_keys=True)
