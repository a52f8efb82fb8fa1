"""Meta-feature vectors: median-imputed, standardised, all-null columns dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


@dataclass(frozen=True)
class FeatureScaler:
    """Fitted on the training tasks' meta-features; turns any task's features into one vector."""

    names: tuple[str, ...]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, feature_dicts: list[dict[str, Optional[float]]]) -> "FeatureScaler":
        all_names = sorted({name for features in feature_dicts for name in features})
        raw = np.array([[_as_float(f.get(name)) for name in all_names] for f in feature_dicts], dtype=float)
        raw = raw.reshape(len(feature_dicts), len(all_names))
        keep = ~np.all(np.isnan(raw), axis=0)  # a column null for every task says nothing
        names = tuple(n for n, k in zip(all_names, keep) if k)
        raw = raw[:, keep]
        medians = np.nanmedian(raw, axis=0) if raw.size else np.zeros(0)
        imputed = np.where(np.isnan(raw), medians, raw)
        means = imputed.mean(axis=0) if raw.size else np.zeros(0)
        stds = imputed.std(axis=0) if raw.size else np.zeros(0)
        scales = np.where(stds > 0, stds, 1.0)  # a constant column maps to 0, not to NaN
        return cls(names=names, medians=medians, means=means, scales=scales)

    def transform(self, features: dict[str, Optional[float]]) -> np.ndarray:
        raw = np.array([_as_float(features.get(name)) for name in self.names], dtype=float)
        imputed = np.where(np.isnan(raw), self.medians, raw)
        return (imputed - self.means) / self.scales

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "FeatureScaler":
        return cls(
            names=tuple(raw["names"]),
            medians=np.asarray(raw["medians"], dtype=float),
            means=np.asarray(raw["means"], dtype=float),
            scales=np.asarray(raw["scales"], dtype=float),
        )
