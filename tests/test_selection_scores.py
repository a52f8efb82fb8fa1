"""Transferability scores against hand-worked cases and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from metahpo.errors import DataError
from metahpo.selection.scores import hscore, leep, logme, max_evidence, nce


def test_nce_of_a_hand_worked_table():
    # z = 0 always means y = 0 (no entropy); z = 1 splits y evenly (ln 2); P(z = 1) = 1/2
    assert nce([0, 0, 1, 1], [0, 0, 1, 0]) == pytest.approx(-0.5 * np.log(2))
    assert nce([0, 1, 2, 3], [0, 1, 0, 1]) == pytest.approx(0.0)  # every z determines y
    assert nce([0, 0, 0, 0], [0, 1, 0, 1]) == pytest.approx(-np.log(2))  # z says nothing


def test_leep_with_one_hot_predictions_is_nce_and_a_soft_case_by_hand():
    rng = np.random.default_rng(0)
    z, y = rng.integers(4, size=40), rng.integers(3, size=40)
    assert leep(np.eye(4)[z], y) == pytest.approx(nce(z, y))
    # two examples, two source classes: theta = [[.8, .2], [.4, .6]], y = [0, 1]
    # P(y, z) = [[.4, .1], [.2, .3]]; P(z) = [.6, .4]; P(y | z) = [[2/3, 1/4], [1/3, 3/4]]
    # expected: x1 .8 * 2/3 + .2 * 1/4 = 0.58333; x2 .4 * 1/3 + .6 * 3/4 = 0.58333
    theta = np.array([[0.8, 0.2], [0.4, 0.6]])
    assert leep(theta, [0, 1]) == pytest.approx(np.log(0.8 * 2 / 3 + 0.2 / 4))


def test_hscore_of_a_one_dimensional_case_by_hand():
    # f = 0, 2, 4, 6 (variance 5 with divisor N); class means 1 and 5 (variance 4): H = 4 / 5
    features, labels = np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])
    assert hscore(features, labels, shrinkage=False) == pytest.approx(0.8)
    # separable features score higher than features that ignore the labels, with or without shrinkage
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 8)
    informative = np.eye(4)[labels] @ rng.normal(size=(4, 16)) * 2 + rng.normal(size=(32, 16))
    noise = rng.normal(size=(32, 16))
    for shrinkage in (True, False):
        assert hscore(informative, labels, shrinkage) > hscore(noise, labels, shrinkage)


def test_max_evidence_is_the_gaussian_marginal_likelihood_at_a_fixed_point():
    rng = np.random.default_rng(2)
    for n, d in ((32, 8), (16, 40)):  # more rows than features, and fewer (the K = 32 case)
        features = rng.normal(size=(n, d))
        target = features @ rng.normal(size=d) * 0.3 + rng.normal(size=n) * 0.5
        found = max_evidence(features, target)
        # y ~ N(0, I / beta + F F^T / alpha): the evidence, computed without the SVD shortcut
        covariance = np.eye(n) / found.beta + features @ features.T / found.alpha
        exact = multivariate_normal(np.zeros(n), covariance).logpdf(target) / n
        assert found.value == pytest.approx(exact, rel=1e-8)
        # a maximum: moving alpha or beta by 10% never raises the evidence; with N > D the maximum is
        # interior (strictly lower around it); with N < D the data need no noise and beta runs to the
        # no-noise limit, where the evidence is flat in beta
        for alpha, beta in ((found.alpha * 1.1, found.beta), (found.alpha / 1.1, found.beta),
                            (found.alpha, found.beta * 1.1), (found.alpha, found.beta / 1.1)):  # fmt: skip
            moved = multivariate_normal(np.zeros(n), np.eye(n) / beta + features @ features.T / alpha)
            # compared with the same logpdf computation: on the flat side only rounding separates them
            assert moved.logpdf(target) / n <= exact + 1e-7 * abs(exact)
            if n > d:
                assert moved.logpdf(target) / n < found.value - 1e-6


def test_logme_ranks_informative_features_above_noise():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 8)
    centres = rng.normal(size=(4, 64))
    good = centres[labels] + rng.normal(size=(32, 64)) * 0.5
    weak = centres[labels] * 0.2 + rng.normal(size=(32, 64))
    noise = rng.normal(size=(32, 64))
    assert logme(good, labels) > logme(weak, labels) > logme(noise, labels)


def test_scores_refuse_bad_input():
    with pytest.raises(DataError, match="labels must be one per row: got shape .3,. for 4 rows"):
        logme(np.ones((4, 2)), [0, 1, 0])
    with pytest.raises(DataError, match="features hold NaN or infinite values"):
        hscore(np.array([[np.nan], [1.0]]), [0, 1])
    with pytest.raises(DataError, match="source_probabilities must be rows of probabilities"):
        leep(np.array([[0.5, 0.6], [0.5, 0.5]]), [0, 1])
    with pytest.raises(DataError, match="labels must be integers 0..C-1"):
        nce([0, 1], [0.5, 1.0])
