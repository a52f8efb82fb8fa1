"""Split-conformal quantiles: the interval half-width that held-out residuals support.

Shared by the meta-learned selector (``metahpo.selection.meta``) and fit_meta's calibrated
rankers (``metahpo.meta.rankers``): both hold out whole prior tasks, predict them, and size an
interval from those residuals, so the interval is honest for a task the model never saw.
"""

from __future__ import annotations

import math

import numpy as np


def conformal_quantile(residuals, coverage: float) -> float:
    """The split-conformal quantile of ``residuals`` for ``coverage``: ceil((n + 1) q) / n of them.

    Capped at the largest residual when n is too small for the nominal level; NaN without residuals.
    Absolute residuals give a two-sided half-width; signed ones (over-predictions) a one-sided margin.
    """
    residuals = np.asarray(residuals, dtype=float)
    residuals = residuals[np.isfinite(residuals)]
    if len(residuals) == 0:
        return math.nan
    level = min(1.0, math.ceil((len(residuals) + 1) * coverage) / len(residuals))
    return float(np.quantile(residuals, level))
