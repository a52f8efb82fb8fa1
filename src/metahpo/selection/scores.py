"""Transferability scores: how well a pretrained model's features or predictions fit a target task,
without fine-tuning. Written from the papers (the reference LogME code needs numba; no maintained
library ships these four), each checked against a hand-worked case in tests/test_selection_scores.py.

- ``logme``: You et al., ICML 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning": the maximum log evidence per example of a Bayesian linear model on the features,
  averaged over one-vs-rest targets.
- ``leep``: Nguyen et al., ICML 2020: the log expected empirical prediction through the source
  model's soft predictions.
- ``nce``: Tran et al., ICCV 2019: minus the conditional entropy of the target labels given the
  source model's hard predictions.
- ``hscore``: Bao et al., ICIP 2019: tr(cov(f)^-1 cov(E[f|y])); with few examples cov(f) is singular,
  so ``shrinkage=True`` (Ibrahim et al., ICLR 2023) uses the Ledoit-Wolf estimate instead of a
  pseudo-inverse.

Labels are integers 0..C-1; features and predictions are 2-D arrays, one row per example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metahpo.errors import DataError


def _labels(labels, rows: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != rows:
        raise DataError(f"labels must be one per row: got shape {labels.shape} for {rows} rows")
    if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise DataError("labels must be integers 0..C-1")
    return labels.astype(np.int64)


def _matrix(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or not len(values):
        raise DataError(f"{name} must be a non-empty 2-D array (rows x columns), got shape {values.shape}")
    if not np.isfinite(values).all():
        raise DataError(f"{name} hold NaN or infinite values")
    return values


@dataclass(frozen=True)
class Evidence:
    """One target's maximum evidence: log p(y | F, alpha, beta) / N at its maximum, and where."""

    value: float
    alpha: float  # prior precision of the weights
    beta: float  # noise precision


BOUND = 40.0  # |log(alpha / beta)| at most this: the no-noise limit (N < D) stays finite


def max_evidence(features: np.ndarray, target: np.ndarray) -> Evidence:
    """The Bayesian linear regression y = F w + e, w ~ N(0, I/alpha), e ~ N(0, I/beta), at the alpha and
    beta of maximum evidence. The marginal is y ~ N(0, C / beta), C = I + F F^T / lam, lam = alpha / beta,
    diagonal in F's left singular basis; for a given lam the best beta is N / (y^T C^-1 y), so the
    evidence is a function of lam alone, maximised by a bounded 1-D search. (MacKay's fixed point,
    which the LogME paper iterates, has no fixed point when N < D and the data need no noise: LogME's
    case of 32 examples and hundreds of features.)"""
    from scipy.optimize import minimize_scalar

    n = len(target)
    u, sigma, _ = np.linalg.svd(features, full_matrices=False)
    s = sigma**2
    projected_sq = (u.T @ target) ** 2
    outside = max(float(target @ target - projected_sq.sum()), 0.0)  # |y|^2 where F does not reach

    def profile(log_lam: float) -> tuple[float, float]:
        """(log evidence, beta) at lam = exp(log_lam) and its best beta."""
        c = 1 + s / np.exp(log_lam)  # C's eigenvalues on F's column space; 1 elsewhere
        quadratic = float(np.sum(projected_sq / c)) + outside
        beta = n / max(quadratic, 1e-300)
        log_p = -0.5 * (n * np.log(2 * np.pi / beta) + float(np.sum(np.log(c))) + beta * quadratic)
        return log_p, beta

    grid = np.linspace(-BOUND, BOUND, 161)  # a coarse scan first: the profile need not be unimodal
    best = float(grid[int(np.argmax([profile(x)[0] for x in grid]))])
    found = minimize_scalar(lambda x: -profile(x)[0], bounds=(max(best - 0.5, -BOUND), min(best + 0.5, BOUND)),
                            method="bounded", options={"xatol": 1e-10})  # fmt: skip
    log_p, beta = profile(float(found.x))
    return Evidence(log_p / n, float(np.exp(found.x) * beta), float(beta))


def logme(features, labels) -> float:
    """LogME of ``features`` (N x D) for class ``labels``: the mean over classes of the one-vs-rest
    maximum evidence per example. Higher is better; comparable across models on the same examples."""
    features = _matrix(features, "features")
    labels = _labels(labels, len(features))
    classes = int(labels.max()) + 1
    return float(np.mean([max_evidence(features, (labels == c).astype(np.float64)).value for c in range(classes)]))


def leep(source_probabilities, labels) -> float:
    """LEEP: mean log of sum_z P(y_i | z) theta_z(x_i), theta the source model's class probabilities."""
    theta = _matrix(source_probabilities, "source_probabilities")
    if (theta < 0).any() or not np.allclose(theta.sum(axis=1), 1.0, atol=1e-6):
        raise DataError("source_probabilities must be rows of probabilities (non-negative, each summing to 1)")
    labels = _labels(labels, len(theta))
    joint = np.zeros((int(labels.max()) + 1, theta.shape[1]))  # P(y, z), target label x source class
    np.add.at(joint, labels, theta / len(labels))
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P(y | z)
    expected = np.einsum("nz,nz->n", theta, conditional[labels])
    return float(np.mean(np.log(expected)))


def nce(source_predictions, labels) -> float:
    """NCE: -H(Y | Z), Z the source model's hard predictions (integers), Y the target labels. It is LEEP
    of one-hot predictions: the mean of log P(y_i | z_i) is sum P(y, z) log P(y | z)."""
    predictions = _labels(source_predictions, len(np.asarray(source_predictions)))
    return leep(np.eye(int(predictions.max()) + 1)[predictions], labels)


def hscore(features, labels, shrinkage: bool = True) -> float:
    """H-score: tr(cov(f)^-1 cov(E[f | y])); the class-conditional means replace each row."""
    features = _matrix(features, "features")
    labels = _labels(labels, len(features))
    if len(features) < 2:
        raise DataError("the H-score needs at least 2 examples")
    centred = features - features.mean(axis=0)
    means = np.zeros_like(features)
    for c in np.unique(labels):
        means[labels == c] = centred[labels == c].mean(axis=0)
    between = means.T @ means / len(features)  # the same divisor as both covariances: the ratio is the score
    if shrinkage:
        from sklearn.covariance import LedoitWolf

        covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
        return float(np.trace(np.linalg.solve(covariance, between)))
    covariance = centred.T @ centred / len(features)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-15) @ between))
