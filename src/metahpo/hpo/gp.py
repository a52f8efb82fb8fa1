"""A small Gaussian process for Bayesian optimisation over [0, 1]^d, in numpy / scipy.

- Kernel: Matérn-5/2 with one lengthscale per dimension (ARD) times a signal variance, plus a
  homoscedastic noise term (and a fixed jitter, for a Cholesky that never fails on duplicates).
- Mean: a constant (the mean of the targets), or a given prior-mean vector (values at the training
  points in ``fit``, at the candidates in ``predict``) on the targets' own scale: the GP then models
  the residual ``y - prior_mean``.
- Targets (or residuals) are standardised inside; predictions come back on the original scale.
- Hyperparameters (log lengthscales, log signal variance, log noise) maximise the log marginal
  likelihood with L-BFGS-B and its analytic gradient, from a default or given start plus seeded
  random restarts (from 5 points on), within bounds (``GPBounds``).
- ``predict`` is vectorised over candidates (chunked, so 30,000+ rows never build a huge matrix);
  the variance is that of the latent function (no noise), floored at a tiny positive number.
- ``expected_improvement`` is for maximisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, lapack, solve_triangular
from scipy.optimize import minimize
from scipy.stats import norm

SQRT5 = np.sqrt(5.0)
JITTER = 1e-8  # added to the diagonal on top of the noise; grown tenfold if Cholesky still fails
VARIANCE_FLOOR = 1e-12
MIN_POINTS_FOR_RESTARTS = 5  # below, the likelihood is too flat for random restarts to find anything better
PREDICT_CHUNK = 8192  # candidates per block in predict: bounds the (chunk x n) kernel matrix


@dataclass(frozen=True)
class GPBounds:
    """Bounds of the hyperparameters, for standardised targets and inputs in [0, 1]."""

    lengthscale: tuple[float, float] = (0.01, 10.0)
    signal_variance: tuple[float, float] = (0.05, 20.0)
    noise: tuple[float, float] = (1e-6, 0.5)


def matern52(A: np.ndarray, B: np.ndarray, lengthscales: np.ndarray, signal_variance: float) -> np.ndarray:
    """Matérn-5/2 ARD kernel matrix between the rows of A and B."""
    a, b = A / lengthscales, B / lengthscales
    # in place: this runs on (30,000 x n) blocks at every ask
    r = a @ (-2.0 * b.T)
    r += (a * a).sum(1)[:, None]
    r += (b * b).sum(1)[None, :]
    np.maximum(r, 0.0, out=r)
    np.sqrt(r, out=r)
    r *= SQRT5  # r is now sqrt(5) * distance
    K = np.exp(-r)
    r *= (r / 3.0 + 1.0)  # sqrt5 d + 5/3 d^2
    r += 1.0
    K *= r
    K *= signal_variance
    return K


def _robust_cholesky(K: np.ndarray) -> np.ndarray:
    jitter = JITTER
    for _ in range(6):
        try:
            return cholesky(K + jitter * np.eye(len(K)), lower=True)
        except LinAlgError:
            jitter *= 10.0
    raise LinAlgError("kernel matrix is not positive definite even with jitter 1e-2")


class GaussianProcess:
    """``fit(X, y)`` then ``predict(candidates)``; ``theta`` = log(lengthscales..., signal variance, noise)."""

    def __init__(self, bounds: GPBounds = GPBounds(), restarts: int = 2, max_iter: int = 200) -> None:
        self.bounds, self.restarts, self.max_iter = bounds, restarts, max_iter
        self.theta: Optional[np.ndarray] = None

    # --- hyperparameters -------------------------------------------------------------------
    def _log_bounds(self, d: int) -> list[tuple[float, float]]:
        b = self.bounds
        return [tuple(np.log(b.lengthscale))] * d + [tuple(np.log(b.signal_variance)), tuple(np.log(b.noise))]

    @staticmethod
    def default_theta(d: int) -> np.ndarray:
        return np.log(np.r_[np.full(d, 0.3), 1.0, 1e-3])

    @staticmethod
    def squared_differences(X: np.ndarray) -> np.ndarray:
        """(d, n, n) per-dimension squared differences: computed once per fit, reused by every LML call."""
        return (X.T[:, :, None] - X.T[:, None, :]) ** 2

    def log_marginal_likelihood(
        self, theta: np.ndarray, X: np.ndarray, z: np.ndarray, gradient: bool = False,
        squared_differences: Optional[np.ndarray] = None,
    ):
        """Log marginal likelihood of standardised targets z (and its gradient in theta)."""
        n, d = X.shape
        D2 = self.squared_differences(X) if squared_differences is None else squared_differences
        inverse_squared_lengthscales = np.exp(-2.0 * theta[:d])
        signal_variance, noise = np.exp(theta[d]), np.exp(theta[d + 1])
        r = SQRT5 * np.sqrt(np.tensordot(inverse_squared_lengthscales, D2, axes=1))  # sqrt(5) * distance
        decay = np.exp(-r)
        K_signal = signal_variance * (1.0 + r + r * r / 3.0) * decay
        K = K_signal + (noise + JITTER) * np.eye(n)
        L, info = lapack.dpotrf(K, lower=1, clean=1)
        if info != 0:  # not positive definite at these hyperparameters: steer the optimiser away
            return (-1e25, np.zeros_like(theta)) if gradient else -1e25
        alpha = lapack.dpotrs(L, z, lower=1)[0]
        value = -0.5 * z @ alpha - np.log(np.diag(L)).sum() - 0.5 * n * np.log(2.0 * np.pi)
        if not gradient:
            return value
        # d LML / d theta_j = 0.5 tr((alpha alpha^T - K^-1) dK/dtheta_j)
        K_inverse = lapack.dpotri(L, lower=1)[0]
        K_inverse = K_inverse + np.tril(K_inverse, -1).T  # dpotri fills the lower triangle only
        W = np.outer(alpha, alpha) - K_inverse
        # dK/dlog l_j = s (5/3) (1 + sqrt5 d) exp(-sqrt5 d) (x_j - x'_j)^2 / l_j^2
        common = (W * (signal_variance * (5.0 / 3.0) * (1.0 + r) * decay)).ravel()
        grad = np.empty_like(theta)
        grad[:d] = 0.5 * inverse_squared_lengthscales * (D2.reshape(d, -1) @ common)
        grad[d] = 0.5 * (W * K_signal).sum()
        grad[d + 1] = 0.5 * noise * np.trace(W)
        return value, grad

    def _optimise(self, X: np.ndarray, z: np.ndarray, seed: int, start: Optional[np.ndarray]) -> np.ndarray:
        d = X.shape[1]
        log_bounds = self._log_bounds(d)
        low, high = np.array(log_bounds).T
        rng = np.random.default_rng(seed)
        starts = [np.clip(self.default_theta(d) if start is None else start, low, high)]
        if len(X) >= MIN_POINTS_FOR_RESTARTS:
            starts += [rng.uniform(low, high) for _ in range(self.restarts)]

        D2 = self.squared_differences(X)

        def negative(theta):
            value, grad = self.log_marginal_likelihood(theta, X, z, gradient=True, squared_differences=D2)
            return -value, -grad

        best_theta, best_value = starts[0], np.inf
        for theta0 in starts:
            result = minimize(negative, theta0, jac=True, method="L-BFGS-B", bounds=log_bounds,
                              options={"maxiter": self.max_iter})
            if np.isfinite(result.fun) and result.fun < best_value:
                best_theta, best_value = result.x, result.fun
        return best_theta

    # --- fit / predict ---------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        prior_mean: Optional[np.ndarray] = None,
        seed: int = 0,
        optimise: bool = True,
        theta: Optional[np.ndarray] = None,
    ) -> "GaussianProcess":
        """Condition on (X, y); fit hyperparameters by LML (starting at ``theta``) unless optimise=False.

        With ``optimise=False`` the given ``theta`` (or the previous fit's, or the default) is used as is.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        residual = y - (0.0 if prior_mean is None else np.asarray(prior_mean, dtype=float))
        self.offset = float(residual.mean())
        spread = float(residual.std())
        self.scale = spread if spread > 1e-12 else 1.0  # constant targets: keep unit scale
        z = (residual - self.offset) / self.scale
        start = theta if theta is not None else self.theta
        if optimise and len(X) >= 2:
            self.theta = self._optimise(X, z, seed, start)
        else:
            self.theta = self.default_theta(X.shape[1]) if start is None else np.asarray(start, dtype=float)
        d = X.shape[1]
        self.lengthscales, self.signal_variance, self.noise = (
            np.exp(self.theta[:d]), float(np.exp(self.theta[d])), float(np.exp(self.theta[d + 1])))
        self.X, self.z = X, z
        self.L = _robust_cholesky(matern52(X, X, self.lengthscales, self.signal_variance) + self.noise * np.eye(len(X)))
        self.alpha = cho_solve((self.L, True), z)
        # explicit L^-1: predict then multiplies (a GEMM) instead of solving per candidate block, 2x faster
        self.L_inverse = solve_triangular(self.L, np.eye(len(X)), lower=True)
        return self

    def log_likelihood(self) -> float:
        """The log marginal likelihood at the fitted hyperparameters (standardised targets)."""
        return float(self.log_marginal_likelihood(self.theta, self.X, self.z))

    def predict(self, candidates: np.ndarray, prior_mean: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (latent, original scale) at each candidate row."""
        candidates = np.asarray(candidates, dtype=float)
        mean = np.empty(len(candidates))
        variance = np.empty(len(candidates))
        for start in range(0, len(candidates), PREDICT_CHUNK):
            block = slice(start, start + PREDICT_CHUNK)
            K_cross = matern52(candidates[block], self.X, self.lengthscales, self.signal_variance)
            mean[block] = K_cross @ self.alpha
            v = self.L_inverse @ K_cross.T
            variance[block] = self.signal_variance - (v * v).sum(0)
        mean = self.offset + self.scale * mean
        if prior_mean is not None:
            mean = mean + np.asarray(prior_mean, dtype=float)
        variance = np.maximum(variance, VARIANCE_FLOOR) * self.scale**2
        return mean, variance

    def loo_mean(self) -> np.ndarray:
        """Leave-one-out posterior means at the training points (closed form, fixed hyperparameters).

        Without the prior mean: add it back if ``fit`` had one.
        """
        K_inverse_diagonal = (self.L_inverse * self.L_inverse).sum(0)  # diag(L^-T L^-1)
        return self.offset + self.scale * (self.z - self.alpha / K_inverse_diagonal)


def expected_improvement(mean: np.ndarray, variance: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """EI for maximisation: E[max(f - best - xi, 0)] under f ~ N(mean, variance)."""
    std = np.sqrt(np.maximum(variance, VARIANCE_FLOOR))
    gain = mean - best - xi
    z = gain / std
    return np.maximum(gain * norm.cdf(z) + std * norm.pdf(z), 0.0)
