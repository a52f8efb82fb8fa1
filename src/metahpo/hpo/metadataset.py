"""Meta-datasets: recorded sweeps as one table, task x configuration -> objective, cost, curve.

Schema (docs/META_DATASET.md): a Parquet table with ``task``, one column per hyperparameter named
``hp.<name>`` (numbers; or strings or booleans: a categorical one), ``objective``, optional ``cost``
(seconds of a full evaluation), optional
``curve`` (list of per-epoch objective values), optional ``test_objective`` and ``metric`` (what
the objective measures); the objective's direction (max or min) is given by the caller. An optional
second table has ``task`` + ``mf.<name>`` meta-features.

This is the one representation of recorded sweeps that the replay engine, the strategies, tune and
fit_meta's rankers read, and the one place for what they share:
- ``Encoding``: configurations -> [0, 1] (log10 first where declared, else by the two-decade rule;
  a categorical hyperparameter one-hot, never as ordered integers);
- ``MetaFeatureScaler``: median imputation + standardisation, fitted on training tasks, applied to
  any new task's vector, JSON-persistable; ``MetaDataset.without`` refits it without a held-out task;
- ``regret`` / ``pool_regret``: normalised regret, (best - y) / (best - worst), failed rows 1;
  ``normalised_scores`` = 1 - regret, what every surrogate and ranker learns.

Inside, everything is oriented "higher is better" (a min objective is negated), so a strategy never
needs to know the direction or the scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from metahpo.errors import MetahpoError

HP_PREFIX = "hp."
MF_PREFIX = "mf."
REQUIRED = ("task", "objective")
LOG_SPAN = 100.0  # max / min at which an undeclared positive hyperparameter is encoded as log10


def _fail(message: str) -> None:
    raise MetahpoError(f"meta-dataset: {message} (schema: docs/META_DATASET.md)")


def _as_float(value: Any) -> float:
    """A meta-feature value as a float; None, non-numbers and non-finite values are missing (NaN)."""
    if value is None:
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


# --- configurations -------------------------------------------------------------------------------
def _value_kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):  # before numbers: a bool is an int to Python
        return "booleans"
    if isinstance(value, (int, float, np.number)):
        return "numbers"
    if isinstance(value, str):
        return "strings"
    return type(value).__name__


def column_kind(table: pd.DataFrame, column: str) -> str:
    """``numeric`` or ``categorical`` (strings, or booleans); a column mixing value types is an error naming it."""
    values = table[column]
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    kinds = {_value_kind(v) for v in values.dropna()}
    if kinds <= {"numbers"}:
        return "numeric"
    if kinds in ({"strings"}, {"booleans"}):
        return "categorical"
    _fail(f"{column} mixes value types ({', '.join(sorted(kinds))}): a hyperparameter column holds numbers, "
          f"strings or booleans, one kind only; write every value of {column} as one type "
          f"(e.g. all strings for a categorical: '1', 'relu'; or numbers alone)")  # fmt: skip
    raise AssertionError  # unreachable: _fail raises


def _plain(value: Any) -> Any:
    """A category as a JSON-able Python value (numpy's bool and str scalars are not)."""
    return bool(value) if isinstance(value, (bool, np.bool_)) else str(value)


@dataclass(frozen=True)
class Encoding:
    """Per ``hp.*`` column: a numeric one log10 or not, then min-max to [0, 1] over every task's rows;
    a categorical one (strings or booleans) one-hot, one [0, 1] column per category in sorted order.

    A category is never an ordered number: "relu" is not between "elu" and "tanh". So ``X`` has
    ``width`` columns (``columns`` names them), not one per hyperparameter; a categorical column's
    ``log`` is False and its low / high 0 / 1. ``categories``: per name, its sorted categories, empty
    for a numeric column (default: every column numeric, as encodings persisted before categories).
    """

    names: tuple[str, ...]
    log: tuple[bool, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    categories: tuple[tuple[Any, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.categories:
            object.__setattr__(self, "categories", tuple(() for _ in self.names))

    @classmethod
    def fit(cls, table: pd.DataFrame, names: Sequence[str], declared: Optional[Mapping[str, bool]] = None) -> "Encoding":
        """``declared`` (column -> log?) wins; an undeclared column is log10 when positive and max / min >= 100."""
        declared = dict(declared or {})
        log, low, high, categories = [], [], [], []
        for column in names:
            if column_kind(table, column) == "categorical":
                if declared.get(column):
                    _fail(f"{column} is declared log-scaled but holds categories (strings or booleans)")
                log.append(False)
                low.append(0.0)
                high.append(1.0)
                categories.append(tuple(sorted({_plain(v) for v in table[column].dropna()})))
                continue
            values = table[column].dropna().to_numpy(dtype=float)
            positive = len(values) > 0 and values.min() > 0
            if column in declared:
                is_log = bool(declared[column])
                if is_log and not positive:
                    _fail(f"{column} is declared log-scaled but has values <= 0")
            else:
                is_log = bool(positive and values.max() / values.min() >= LOG_SPAN)
            encoded = np.log10(values) if is_log else values
            log.append(is_log)
            low.append(float(encoded.min()) if len(encoded) else 0.0)
            high.append(float(encoded.max()) if len(encoded) else 0.0)
            categories.append(())
        return cls(tuple(names), tuple(log), tuple(low), tuple(high), tuple(categories))

    @property
    def columns(self) -> tuple[str, ...]:
        """The names of X's columns: ``hp.<name>``, or ``hp.<name>=<category>`` for each category."""
        return tuple(c for name, cats in zip(self.names, self.categories)
                     for c in ([f"{name}={v}" for v in cats] if cats else [name]))  # fmt: skip

    @property
    def width(self) -> int:
        return len(self.columns)

    def groups(self) -> list[tuple[str, slice, tuple[Any, ...]]]:
        """Per hyperparameter: (name, its columns of X, its categories; empty when numeric)."""
        groups, start = [], 0
        for name, cats in zip(self.names, self.categories):
            groups.append((name, slice(start, start + max(1, len(cats))), cats))
            start += max(1, len(cats))
        return groups

    def raw_values(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The ``hp.*`` columns as recorded: numbers as floats, categories as Python values (missing: None)."""
        raw = {}
        for name, cats in zip(self.names, self.categories):
            column = frame[name]
            raw[name] = column.astype(object).where(column.notna(), None) if cats else column.astype(float)
        return pd.DataFrame(raw, index=frame.index)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, ``width``) in [0, 1] (outside it for values beyond the fitted range; an unseen or missing
        category is all zeros)."""
        columns = []
        for column, is_log, low, high, cats in zip(self.names, self.log, self.low, self.high, self.categories):
            if cats:
                values = frame[column].to_numpy(dtype=object)
                columns.extend((values == np.array(category, dtype=object)).astype(float) for category in cats)
                continue
            values = frame[column].to_numpy(dtype=float)
            encoded = np.log10(values) if is_log else values
            columns.append((encoded - low) / (high - low) if high > low else np.zeros_like(encoded))
        return np.column_stack(columns) if columns else np.zeros((len(frame), 0))

    def decode(self, X: np.ndarray) -> pd.DataFrame:
        """``encode``'s inverse: the values of encoded rows (a categorical one: its largest column's category)."""
        values = {}
        for (name, columns, cats), is_log, low, high in zip(self.groups(), self.log, self.low, self.high):
            if cats:
                values[name] = pd.Series(np.array(cats, dtype=object)[np.argmax(X[:, columns], axis=1)], dtype=object)
                continue
            scaled = low + X[:, columns.start] * (high - low)
            values[name] = 10**scaled if is_log else scaled
        return pd.DataFrame(values)

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "log": list(self.log), "low": list(self.low), "high": list(self.high),
                "categories": [list(c) for c in self.categories]}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Encoding":
        categories = tuple(tuple(c) for c in raw.get("categories", ()))  # absent: persisted before categories
        return cls(
            tuple(raw["names"]), tuple(bool(x) for x in raw["log"]),
            tuple(float(x) for x in raw["low"]), tuple(float(x) for x in raw["high"]), categories,
        )  # fmt: skip


# --- meta-features --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetaFeatureScaler:
    """Median imputation then standardisation, fitted on training tasks; turns any task's features into one vector.

    Columns missing for every training task or constant over them are dropped (they carry nothing).
    """

    names: tuple[str, ...]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, Any]], names: Optional[Sequence[str]] = None) -> "MetaFeatureScaler":
        """``rows``: one ``{name: value}`` per training task; ``names``: the column order (default: first seen)."""
        names = list(names) if names is not None else list(dict.fromkeys(n for r in rows for n in r))
        raw = np.array([[_as_float(r.get(n)) for n in names] for r in rows], dtype=float).reshape(len(rows), len(names))
        observed = ~np.all(np.isnan(raw), axis=0) if len(rows) else np.zeros(len(names), dtype=bool)
        medians = np.zeros(len(names))
        medians[observed] = np.nanmedian(raw[:, observed], axis=0)
        imputed = np.where(np.isnan(raw), medians, raw)
        # max == min, not std == 0: the std of equal floats can come out at 1e-17
        keep = observed & (np.ptp(imputed, axis=0) > 0) if len(rows) else observed
        kept = imputed[:, keep]
        return cls(tuple(n for n, k in zip(names, keep) if k), medians[keep], kept.mean(axis=0), kept.std(axis=0))

    def transform(self, features: Mapping[str, Any]) -> np.ndarray:
        raw = np.array([_as_float(features.get(name)) for name in self.names], dtype=float)
        return (np.where(np.isnan(raw), self.medians, raw) - self.means) / self.scales

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names), "medians": self.medians.tolist(), "means": self.means.tolist(),
                "scales": self.scales.tolist()}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "MetaFeatureScaler":
        arrays = {k: np.asarray(raw[k], dtype=float) for k in ("medians", "means", "scales")}
        return cls(names=tuple(raw["names"]), **arrays)


# --- tasks ----------------------------------------------------------------------------------------
@dataclass
class TaskData:
    """One task's pool of configurations. For the held-out task, y / curves / cost / test stay hidden (None)."""

    name: str
    X: np.ndarray  # (n, encoding width) encoded configurations (``Encoding``: categories one-hot), in [0, 1]
    raw: pd.DataFrame  # (n, hyperparameters) the values as recorded (hp.* columns; categories as strings / booleans)
    meta_features: Optional[np.ndarray] = None  # standardised vector (``MetaFeatureScaler``), or None
    y: Optional[np.ndarray] = None  # (n,) objective, higher is better, NaN = failed
    curves: Optional[list[np.ndarray]] = None  # per-epoch objective, higher is better
    cost: Optional[np.ndarray] = None  # (n,) cost of a full evaluation
    n_epochs: int = 1  # the longest curve: the full fidelity
    test: Optional[np.ndarray] = None  # (n,) test_objective, oriented like y; reported, never searched on
    metric: Optional[str] = None  # what the objective measures (e.g. accuracy), when the table says
    mf_raw: Optional[dict[str, float]] = None  # the meta-features as given (name without mf.), NaN = missing
    encoding: Optional[Encoding] = None  # what X was encoded with (its log flags are the space's scales)

    def __len__(self) -> int:
        return len(self.X)

    def hidden(self) -> "TaskData":
        """The view a strategy gets of the held-out task: configurations (and meta-features) only."""
        return TaskData(self.name, self.X, self.raw, self.meta_features, n_epochs=self.n_epochs, mf_raw=self.mf_raw,
                        encoding=self.encoding)  # fmt: skip


def regret_scale(task: TaskData) -> tuple[float, float]:
    """(best, worst) finite objective of the task's pool: the scale of its normalised regret."""
    finite = task.y[np.isfinite(task.y)]
    if len(finite) == 0:
        raise MetahpoError(f"task {task.name!r} has no finite objective: nothing to compare against")
    return float(finite.max()), float(finite.min())


def regret(task: TaskData, found: Any) -> Any:
    """The one normalised regret: (best - found) / (best - worst) on the task's scale; 1 where not finite.

    ``found``: a value (the best found so far) or an array of them; 0 everywhere finite when best == worst.
    """
    best, worst = regret_scale(task)
    found = np.asarray(found, dtype=float)
    finite = np.isfinite(found)
    value = np.where(finite, (best - found) / (best - worst) if best > worst else 0.0, 1.0)
    return float(value) if value.ndim == 0 else value


def pool_regret(task: TaskData) -> np.ndarray:
    """Normalised regret of every row of a task's pool, as if it were the best found (failed rows: 1)."""
    return regret(task, task.y)


def normalised_scores(task: TaskData) -> np.ndarray:
    """1 - pool regret: the task's best row 1, its worst (and failed rows) 0; what surrogates learn.

    Computed as (y - worst) / (best - worst) on ``regret_scale``, which is 1 - regret in exact
    arithmetic; the direct form keeps the last bit of the labels (a forest's tie-breaks see it).
    """
    best, worst = regret_scale(task)
    finite = np.isfinite(task.y)
    if best == worst:
        return np.where(finite, 1.0, 0.0)
    return np.where(finite, (task.y - worst) / (best - worst), 0.0)


@dataclass
class MetaDataset:
    tasks: dict[str, TaskData]
    encoding: Encoding
    direction: str = "max"
    scaler: Optional[MetaFeatureScaler] = None  # fitted on these tasks; None without meta-features
    mf_columns: list[str] = field(default_factory=list)  # the meta-features table's names, in its order
    _without: dict[str, "MetaDataset"] = field(default_factory=dict, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        return list(self.tasks)

    @property
    def hyperparameters(self) -> list[str]:
        return list(self.encoding.names)

    @property
    def log_scale(self) -> dict[str, bool]:
        return dict(zip(self.encoding.names, self.encoding.log))

    @property
    def meta_feature_names(self) -> list[str]:
        return [] if self.scaler is None else list(self.scaler.names)

    def standardised(self, task: TaskData) -> TaskData:
        """A view of ``task`` whose meta-features are standardised by this meta-dataset's scaler."""
        vector = None if self.scaler is None or task.mf_raw is None else self.scaler.transform(task.mf_raw)
        return replace(task, meta_features=vector)

    def without(self, name: str) -> "MetaDataset":
        """The other tasks, the scaler refitted on them alone (cached: the same objects every call).

        Views share the arrays of this meta-dataset's tasks (so caches keyed on them hit across folds).
        """
        if name not in self._without:
            rest = {n: t for n, t in self.tasks.items() if n != name}
            with_mf = bool(rest) and all(t.mf_raw is not None for t in rest.values())
            scaler = MetaFeatureScaler.fit([t.mf_raw for t in rest.values()], self.mf_columns) if with_mf else None
            data = MetaDataset({}, self.encoding, self.direction, scaler, list(self.mf_columns))
            data.tasks = {n: data.standardised(t) for n, t in rest.items()}
            self._without[name] = data
        return self._without[name]

    def fold(self, name: str) -> tuple[TaskData, list[TaskData]]:
        """Leave-one-task-out: (the held-out task, hidden and standardised like the others; the others)."""
        rest = self.without(name)
        return rest.standardised(self.tasks[name]).hidden(), list(rest.tasks.values())


# --- reading --------------------------------------------------------------------------------------
def from_frame(
    table: pd.DataFrame,
    direction: str = "max",
    meta_features: Optional[pd.DataFrame] = None,
    log_scale: Optional[Mapping[str, bool]] = None,
) -> MetaDataset:
    """Validate a meta-dataset table and build per-task pools.

    ``log_scale``: declared log flags per ``hp.*`` column (e.g. ``metahpo.search_space.declared_log_scale``);
    a column not in it is decided by the two-decade rule.
    """
    if direction not in ("max", "min"):
        _fail(f"direction must be max or min, not {direction!r}")
    missing = [c for c in REQUIRED if c not in table.columns]
    hp_columns = [c for c in table.columns if c.startswith(HP_PREFIX)]
    if missing:
        _fail(f"missing required column(s) {missing}")
    if not hp_columns:
        _fail("no hyperparameter columns (named hp.<name>)")
    for column in ("objective", "test_objective"):
        if column in table.columns and not pd.api.types.is_numeric_dtype(table[column]):
            _fail(f"{column} must be numeric, got dtype {table[column].dtype}")
    for column in hp_columns:
        column_kind(table, column)  # numbers, strings or booleans; a mix is refused here, naming the column
    unknown = sorted(set(log_scale or {}) - set(hp_columns))
    if unknown:
        _fail(f"log_scale names columns the table does not have: {unknown}")
    # every task must be on the same search space: the same hyperparameters present
    present = table.groupby("task")[hp_columns].apply(lambda t: tuple(t.notna().all().tolist()))
    if present.nunique() > 1:
        spaces = {task: [h for h, ok in zip(hp_columns, flags) if ok] for task, flags in present.items()}
        _fail(f"tasks are on different search spaces: {spaces}")
    sign = 1.0 if direction == "max" else -1.0
    encoding = Encoding.fit(table, hp_columns, log_scale)  # shared by all tasks: configurations compare
    mf_raw, mf_columns = _raw_meta_features(meta_features, table["task"].unique()) if meta_features is not None else ({}, [])

    tasks = {}
    for task, rows in table.groupby("task", sort=False):
        rows = rows.reset_index(drop=True)
        raw = encoding.raw_values(rows)
        curves = None
        if "curve" in rows.columns:
            curves = [sign * np.asarray(c, dtype=float) if c is not None else np.array([]) for c in rows["curve"]]
        n_epochs = max((len(c) for c in curves), default=1) if curves else 1
        metrics = rows["metric"].dropna().astype(str).unique() if "metric" in rows.columns else []
        tasks[str(task)] = TaskData(
            name=str(task), X=encoding.encode(raw), raw=raw,
            y=sign * rows["objective"].to_numpy(dtype=float), curves=curves,
            cost=rows["cost"].to_numpy(dtype=float) if "cost" in rows.columns else None, n_epochs=max(1, n_epochs),
            test=sign * rows["test_objective"].to_numpy(dtype=float) if "test_objective" in rows.columns else None,
            metric=next((m for m in metrics if m), None), mf_raw=mf_raw.get(task), encoding=encoding,
        )  # fmt: skip
    everyone = MetaDataset(tasks, encoding, direction, None, mf_columns)
    if meta_features is not None:
        everyone.scaler = MetaFeatureScaler.fit([t.mf_raw for t in tasks.values()], mf_columns)
        everyone.tasks = {n: everyone.standardised(t) for n, t in tasks.items()}
    return everyone


def _raw_meta_features(frame: pd.DataFrame, tasks) -> tuple[dict[Any, dict[str, float]], list[str]]:
    """task -> {name: value} (names without ``mf.``), and the names in the table's order."""
    if "task" not in frame.columns:
        _fail("the meta-features table needs a task column")
    columns = [c for c in frame.columns if c.startswith(MF_PREFIX)]
    if not columns:
        _fail("the meta-features table has no mf.<name> columns")
    frame = frame.set_index("task")
    absent = [t for t in tasks if t not in frame.index]
    if absent:
        _fail(f"meta-features missing for task(s) {absent}")
    names = [c[len(MF_PREFIX) :] for c in columns]
    values = frame.loc[list(tasks), columns].to_numpy(dtype=float)
    return {t: dict(zip(names, map(_as_float, values[i]))) for i, t in enumerate(tasks)}, names


def read(
    path: str | Path,
    direction: str = "max",
    meta_features: Optional[str | Path] = None,
    log_scale: Optional[Mapping[str, bool]] = None,
) -> MetaDataset:
    path = Path(path)
    if not path.is_file():
        _fail(f"{path} not found")
    table = pd.read_parquet(path)
    mf = pd.read_parquet(meta_features) if meta_features is not None else None
    return from_frame(table, direction, mf, log_scale)


def from_sweeps(
    sweeps: list[pd.DataFrame], metafeatures: Optional[dict[str, dict]] = None, search: Optional[str] = None
) -> tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """The pipeline's sweep tables (one family) -> a meta-dataset table (+ meta-features table).

    objective = val_metric (max); non-ok trials keep a NaN objective (failed, never the best);
    cost = seconds; curve = per-epoch validation metric; test_objective = test_metric (NaN unless
    ok) and metric = the primary metric's name, where the sweep has them. ``search``: only the rows
    of that search (``grid``: the seed grid, fit_meta's candidates); None: every row.
    """
    rows = []
    for sweep in sweeps:
        if search is not None:
            sweep = sweep[sweep["search"] == search]
        ok = sweep["state"] == "ok"
        hp = [c for c in sweep.columns if c.startswith(HP_PREFIX)]
        frame = sweep[["task", *hp]].reset_index(drop=True)
        frame["objective"] = np.where(ok, sweep["val_metric"], np.nan)
        frame["cost"] = sweep["seconds"].to_numpy(dtype=float)
        frame["curve"] = [list(map(float, c)) if c is not None else [] for c in sweep["curve_val_metric"]]
        if "test_metric" in sweep.columns:
            frame["test_objective"] = np.where(ok, sweep["test_metric"].astype(float), np.nan)
        if "metric" in sweep.columns:
            frame["metric"] = sweep["metric"].to_numpy()
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    mf_table = None
    if metafeatures:
        records = []
        for task, features in metafeatures.items():
            records.append({"task": task, **{f"{MF_PREFIX}{k}": _as_float(v) for k, v in features.items()}})
        mf_table = pd.DataFrame.from_records(records)
    return table, mf_table
