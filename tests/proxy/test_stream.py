"""Compute-bound streams: passes are permutations, budgets are exact, groups interleave evenly."""

import numpy as np
import pytest

from datamix.proxy.stream import Budget, lr_schedule, mixture_stream


def test_every_pass_is_a_permutation_and_the_last_one_is_cut():
    order = mixture_stream([10], [35], seed=0)
    assert order.shape == (35,)
    for k in range(3):
        assert sorted(order[10 * k:10 * (k + 1)].tolist()) == list(range(10))
    tail = order[30:]
    assert len(set(tail.tolist())) == 5  # a partial pass: distinct units
    assert not np.array_equal(order[:10], order[10:20])  # a fresh permutation per pass


def test_budget_below_the_pool_is_a_random_distinct_subset():
    order = mixture_stream([100], [30], seed=1)
    assert len(set(order.tolist())) == 30
    assert Budget(seen=30, unique=30).epochs == 1.0


def test_groups_get_their_counts_and_interleave_evenly():
    sizes, seen = [50, 10, 40], [300, 600, 100]
    order = mixture_stream(sizes, seen, seed=2)
    group = np.searchsorted(np.cumsum(sizes), order, side="right")
    np.testing.assert_array_equal(np.bincount(group, minlength=3), seen)
    # every tenth of the run holds each group's share to within a few units
    for part in np.array_split(group, 10):
        np.testing.assert_allclose(np.bincount(part, minlength=3) / len(part), np.array(seen) / 1000, atol=0.02)
    # group 1 (10 units, 600 seen) is repeated 60 times, each pass a permutation of its own units
    g1 = order[group == 1]
    assert set(g1.tolist()) == set(range(50, 60))
    assert all(sorted(g1[i:i + 10].tolist()) == list(range(50, 60)) for i in range(0, 600, 10))


def test_deterministic_under_a_seed():
    a = mixture_stream([7, 3], [20, 9], seed=5)
    np.testing.assert_array_equal(a, mixture_stream([7, 3], [20, 9], seed=5))
    assert not np.array_equal(a, mixture_stream([7, 3], [20, 9], seed=6))


def test_bad_input():
    with pytest.raises(ValueError, match="one entry per group"):
        mixture_stream([3, 4], [1])
    with pytest.raises(ValueError, match="no units"):
        mixture_stream([0, 4], [2, 1])
    with pytest.raises(ValueError, match=">= 0"):
        mixture_stream([3], [-1])
    assert mixture_stream([0], [0]).size == 0


def test_schedule_warms_up_then_decays_to_the_end_of_the_budget():
    f = lr_schedule(200, warmup=0.1, final=0.1)
    values = np.array([f(s) for s in range(200)])
    assert values[0] == pytest.approx(1 / 20) and values[19] == pytest.approx(1.0)
    assert np.all(np.diff(values[:20]) > 0) and np.all(np.diff(values[20:]) <= 1e-12)
    assert values[-1] == pytest.approx(0.1)
    assert lr_schedule(1)(0) == 1.0  # a single step runs at the peak rate
    with pytest.raises(ValueError, match="total_steps"):
        lr_schedule(0)
    with pytest.raises(ValueError, match="warmup"):
        lr_schedule(10, warmup=1.0)
