"""Distinct samples in offers with duplicates (datamix.predict.distinct) and purchases predicted at them."""

import numpy as np
import pytest

from datamix.predict import plan_purchase
from datamix.predict.distinct import DistinctSamples, distinct_in_offer, duplicate_groups, expected_distinct


def _offer(rng, distinct, copies, dim=16, noise=1e-4):
    """``distinct`` random directions, each ``copies`` times with a little noise, shuffled."""
    base = rng.normal(size=(distinct, dim))
    X = np.repeat(base, copies, axis=0) + noise * rng.normal(size=(distinct * copies, dim))
    items = np.repeat(np.arange(distinct), copies)
    order = rng.permutation(len(X))
    return X[order].astype(np.float32), items[order]


def test_duplicate_groups_are_the_planted_copies(rng):
    X, items = _offer(rng, distinct=40, copies=3)
    X = np.concatenate([X, rng.normal(size=(25, 16)).astype(np.float32)])  # 25 samples without a copy
    groups = duplicate_groups(X, eps=0.01)
    assert sorted(groups.tolist()) == [1] * 25 + [3] * 40
    assert duplicate_groups(X[:1], eps=0.01).tolist() == [1]


def test_distinct_in_offer_known_answers():
    assert distinct_in_offer(np.ones(200), 1000) == pytest.approx(1000.0)  # all distinct: the whole offer
    assert distinct_in_offer([3, 1, 2, 1], 7) == 4.0  # the whole offer revealed: what was seen
    # d + f1^2 / (n/(n-1) 2 f2 + q/(1-q) f1), n = 300, q = 0.2, d = 134, f1 = 40, f2 = 45
    groups = [1] * 40 + [2] * 45 + [3] * 29 + [4] * 17 + [5] * 3
    assert sum(groups) == 300 and len(groups) == 134
    assert distinct_in_offer(groups, 1500) == pytest.approx(134 + 40 ** 2 / (300 / 299 * 2 * 45 + 0.25 * 40))
    assert distinct_in_offer([1], 10) == pytest.approx(10.0)  # one revealed sample: no sign of copies
    with pytest.raises(ValueError, match="reveal of 12 samples from an offer of 10"):
        distinct_in_offer(np.ones(12), 10)


def test_distinct_in_offer_recovers_planted_copies_from_a_revealed_fifth(rng):
    """150 items ten times each; 300 of the 1500 revealed at random, 200 times: the estimate averages
    within 3% of 150 (the groups seen average ~134)."""
    items = np.repeat(np.arange(150), 10)
    estimates = [distinct_in_offer(_counts(rng.choice(items, 300, replace=False)), 1500) for _ in range(200)]
    assert np.mean(estimates) == pytest.approx(150, rel=0.03)


def _counts(draw):
    c = np.bincount(draw)
    return c[c > 0]


def test_expected_distinct_matches_draws_and_its_derivative(rng):
    M, D = np.array([1000.0, 600.0]), np.array([100.0, 600.0])
    x = np.array([250.0, 300.0])
    u, du = expected_distinct(x, M, D)
    assert u[1] == pytest.approx(300.0) and du[1] == pytest.approx(1.0)  # no copies: every sample is new
    items = np.repeat(np.arange(100), 10)
    drawn = np.mean([np.unique(rng.choice(items, 250, replace=False)).size for _ in range(400)])
    assert u[0] == pytest.approx(drawn, rel=0.01)  # 100 (1 - 0.75^10) = 94.4
    h = 1e-4
    fd = (expected_distinct(x + h, M, D)[0] - expected_distinct(x - h, M, D)[0]) / (2 * h)
    np.testing.assert_allclose(du, fd, rtol=1e-6)
    assert expected_distinct(M, M, D)[0] == pytest.approx(D)  # the whole offer: all its distinct samples


class _SizeOnly:
    """A test double of the predictor protocol: accuracy 1 - 10 / N plus a small preference for the
    second source, with exact gradients (along the simplex) and size derivative."""

    sources_ = ["a", "b"]
    greater_is_better = True

    def predict(self, p, N):
        return 1.0 - 10.0 / N + 0.01 * np.asarray(p)[1]

    def gradient(self, p, N):
        g = np.array([0.0, 0.01])
        return g - np.asarray(p) @ g

    def size_derivative(self, p, N):
        return 10.0 / N ** 2

    def predict_interval(self, p, N, level=0.9):
        v = self.predict(p, N)
        return v - 0.1, v + 0.1


def test_distinct_samples_chain_rule_and_identity_without_copies():
    inner = _SizeOnly()
    same = DistinctSamples(inner, offers={"a": 500, "b": 500}, distinct={"a": 500, "b": 500})
    p = np.array([0.3, 0.7])
    assert same.predict(p, 200) == pytest.approx(inner.predict(p, 200), rel=1e-12)
    wrapped = DistinctSamples(inner, offers={"a": 500, "b": 500}, distinct={"a": 50, "b": 500})
    u, _ = expected_distinct(p * 200, [500, 500], [50, 500])
    assert wrapped.predict(p, 200) == pytest.approx(inner.predict(u / u.sum(), u.sum()))
    assert wrapped.predict_interval(p, 200) == pytest.approx(inner.predict_interval(u / u.sum(), u.sum()))

    def at(x):
        return wrapped.predict(x / x.sum(), x.sum())

    x, h = p * 200, 1e-4
    fd = np.array([(at(x + h * e) - at(x - h * e)) / (2 * h) for e in np.eye(2)])
    # the optimizer's identity: d/dx_i = g_i / N + dF/dN
    np.testing.assert_allclose(wrapped.gradient(p, 200) / 200 + wrapped.size_derivative(p, 200), fd, rtol=1e-5)
    assert p @ wrapped.gradient(p, 200) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="distinct must be in"):
        DistinctSamples(inner, offers={"a": 500, "b": 500}, distinct={"a": 600, "b": 500}).predict(p, 10)


def test_a_cheap_offer_of_copies_is_not_bought_for_its_size():
    """a costs a tenth of b but holds 20 distinct samples in 1000: counted in samples, the whole budget
    goes to a (1000 samples against b's 100); counted in distinct samples, b wins (100 against 20)."""
    prices, offers = {"a": 0.1, "b": 1.0}, {"a": 1000, "b": 1000}
    naive = plan_purchase(_SizeOnly(), prices=prices, offers=offers, budget=100.0)
    assert naive.buy["a"] == 1000
    aware = plan_purchase(DistinctSamples(_SizeOnly(), offers=offers, distinct={"a": 20, "b": 1000}),
                          prices=prices, offers=offers, budget=100.0)
    assert aware.buy["b"] >= 90 and aware.predicted > 1.0 - 10.0 / 100.0
