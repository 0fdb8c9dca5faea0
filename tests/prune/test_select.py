"""select(): directions, exact sizes, class balance, CCS against the reference rules."""

import numpy as np
import pytest

from datamix.prune import n_kept, select
from datamix.prune.select import fill_from_smallest


def test_hard_easy_known_answer():
    scores = [0.3, 0.9, 0.1, 0.5, 0.7]
    np.testing.assert_array_equal(select(scores, 0.4, keep="hard"), [1, 4])
    np.testing.assert_array_equal(select(scores, 0.4, keep="easy"), [0, 2])
    np.testing.assert_array_equal(select(scores, 1.0, keep="hard"), np.arange(5))


def test_ties_go_to_the_lower_index():
    np.testing.assert_array_equal(select([1.0, 1.0, 1.0, 0.0], 0.5, keep="hard"), [0, 1])


@pytest.mark.parametrize("keep", ["hard", "easy", "random", "ccs"])
@pytest.mark.parametrize("balance", ["none", "proportional", "equal"])
@pytest.mark.parametrize("fraction", [0.001, 0.13, 0.5, 0.99, 1.0])
def test_exact_size_and_unique(keep, balance, fraction):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=997)
    labels = rng.choice(4, size=997, p=[0.6, 0.3, 0.08, 0.02])
    idx = select(scores, fraction, keep=keep, labels=labels, balance=balance, seed=1)
    assert idx.size == n_kept(997, fraction) == max(1, int(np.floor(fraction * 997 + 0.5)))
    assert np.unique(idx).size == idx.size and np.all(np.diff(idx) > 0)


def test_random_is_seeded():
    s = np.zeros(100)
    np.testing.assert_array_equal(select(s, 0.3, keep="random", seed=5),
                                  select(s, 0.3, keep="random", seed=5))
    assert not np.array_equal(select(s, 0.3, keep="random", seed=5),
                              select(s, 0.3, keep="random", seed=6))


def test_proportional_balance_keeps_class_shares_and_hardest_per_class():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    scores = rng.normal(size=1000) + 3 * (labels == 0)  # class 0 is globally hardest
    idx = select(scores, 0.1, keep="hard", labels=labels, balance="proportional")
    np.testing.assert_array_equal(np.bincount(labels[idx]), [50, 30, 20])
    for c in range(3):
        members = np.flatnonzero(labels == c)
        ref = members[np.argsort(-scores[members], kind="stable")[: (50, 30, 20)[c]]]
        np.testing.assert_array_equal(np.sort(ref), idx[labels[idx] == c])
    # Without balance the globally hardest class takes (almost) everything.
    assert np.bincount(labels[select(scores, 0.1, keep="hard")], minlength=3)[0] > 90


def test_equal_balance_fills_small_classes_whole():
    labels = np.repeat([0, 1, 2], [500, 300, 10])
    idx = select(np.zeros(810), 0.1, keep="random", labels=labels, balance="equal")
    np.testing.assert_array_equal(np.bincount(labels[idx]), [36, 35, 10])


def test_fill_from_smallest_known_answers():
    np.testing.assert_array_equal(fill_from_smallest(np.array([1, 10, 10]), 9), [1, 4, 4])
    np.testing.assert_array_equal(fill_from_smallest(np.array([5, 0, 2, 9]), 10), [4, 0, 2, 4])
    np.testing.assert_array_equal(fill_from_smallest(np.array([3, 3]), 6), [3, 3])
    with pytest.raises(ValueError, match="cannot place 7"):
        fill_from_smallest(np.array([3, 3]), 7)


def reference_ccs_budgets(scores, k, beta, n_strata):
    """CCS budget per stratum, written out as in Zheng et al.'s description."""
    kept = np.sort(scores)[: len(scores) - int(beta * len(scores))]  # drop the hardest beta share
    edges = np.linspace(kept.min(), kept.max(), n_strata + 1)
    counts = np.array([np.sum((kept >= lo) & ((kept < hi) if j < n_strata - 1 else (kept <= hi)))
                       for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))])
    budgets, left = np.zeros(n_strata, int), k
    for i, j in enumerate(np.argsort(counts, kind="stable")):
        budgets[j] = min(counts[j], left // (n_strata - i))
        left -= budgets[j]
    return edges, budgets


def test_ccs_drops_hardest_and_follows_stratum_budgets():
    rng = np.random.default_rng(0)
    scores = rng.exponential(size=5000)  # skewed: many easy samples, few hard ones
    k, beta, n_strata = 500, 0.1, 20
    idx = select(scores, k / 5000, keep="ccs", beta=beta, n_strata=n_strata, seed=3)
    hardest = np.argsort(-scores)[:500]
    assert np.intersect1d(idx, hardest).size == 0
    edges, budgets = reference_ccs_budgets(scores, k, beta, n_strata)
    got = np.histogram(scores[idx], bins=edges)[0]
    np.testing.assert_array_equal(got, budgets)
    # Coverage: every stratum holds >= 25 samples here, so CCS spreads the budget evenly over
    # the score range: half lands above its midpoint, against 1/3 for random (0.336 seen).
    rand = select(scores, k / 5000, keep="random", seed=3)
    mid = 0.5 * (edges[0] + edges[-1])
    np.testing.assert_allclose(np.mean(scores[idx] > mid), 0.5, atol=0.03)
    assert np.mean(scores[rand] > mid) < 0.4


def test_ccs_uniform_inside_a_stratum():
    # One stratum (all scores equal): CCS is then uniform sampling; each sample is kept with
    # probability k / n. Over 400 seeds, counts per sample follow Binomial(400, 0.2).
    counts = np.zeros(50)
    for seed in range(400):
        counts[select(np.ones(50), 0.2, keep="ccs", beta=0.0, seed=seed)] += 1
    np.testing.assert_allclose(counts.mean(), 80.0)
    assert counts.min() > 80 - 4.5 * 8 and counts.max() < 80 + 4.5 * 8  # sd = 8


def test_ccs_beta_is_capped_by_the_budget():
    # beta=0.5 would leave 50 samples for a budget of 90: only the 10 hardest are dropped.
    idx = select(np.arange(100.0), 0.9, keep="ccs", beta=0.5)
    np.testing.assert_array_equal(idx, np.arange(90))


@pytest.mark.parametrize("fraction", [0, -0.1, 1.01, float("nan"), "half"])
def test_fraction_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        select(np.zeros(5), fraction)


def test_labels_of_wrong_length():
    with pytest.raises(ValueError, match=r"labels has shape \(4,\) but scores has 5 samples"):
        select(np.zeros(5), 0.5, labels=[0, 1, 0, 1])


def test_nan_scores_are_named():
    with pytest.raises(ValueError, match=r"scores contains NaN or inf in 1 row, first: \[3\]"):
        select([0.0, 1.0, 2.0, np.nan], 0.5)


def test_unknown_options():
    with pytest.raises(ValueError, match="keep must be one of"):
        select(np.zeros(5), 0.5, keep="medium")
    with pytest.raises(ValueError, match="balance must be one of"):
        select(np.zeros(5), 0.5, balance="class")
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
        select(np.zeros(5), 0.5, keep="ccs", beta=1.0)
