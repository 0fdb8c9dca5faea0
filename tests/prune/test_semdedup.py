"""SemDeDup: one survivor per planted near-duplicate group, exact against O(n^2) oracles."""

import tracemalloc

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from datamix.index import spherical_kmeans
from datamix.prune import semdedup
from datamix.prune.semdedup import _dedup_ordered, _semdedup_impl


def planted_groups(n_groups=400, d=48, noise=0.004, seed=0):
    """Random unit bases, each repeated 1-6 times with small noise; returns (X, group)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_groups, d))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    sizes = rng.integers(1, 7, size=n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    X = base[group] + noise * rng.normal(size=(group.size, d))
    perm = rng.permutation(group.size)
    return X[perm].astype(np.float32), group[perm]


def exact_components(X, threshold):
    """Connected components of the exact O(n^2) graph cos(x_i, x_j) > threshold."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return connected_components((Xn @ Xn.T) > threshold, directed=False)[1]


def greedy_oracle(X, order, threshold):
    """Plain O(m^2) SemDeDup on one ordering: keep i unless it is close to an earlier kept point."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    keep = np.zeros(len(X), bool)
    for pos, i in enumerate(order):
        earlier_kept = order[:pos][keep[order[:pos]]]
        keep[i] = not (Xn[earlier_kept] @ Xn[i] > threshold).any()
    return keep


@pytest.mark.parametrize("n_clusters", [1, 8, 40])
def test_planted_groups_keep_exactly_one_each(n_clusters):
    X, group = planted_groups()
    eps = 0.02
    keep = semdedup(X, eps, n_clusters=n_clusters, block_size=64, seed=0)
    comp = exact_components(X, 1 - eps)
    # The planted groups are exactly the components of the exact duplicate graph.
    assert np.unique(comp).size == np.unique(group).size
    survivors = np.bincount(comp[keep], minlength=comp.max() + 1)
    sizes = np.bincount(comp)
    # Precision / recall of removals against the exact check: a removal is right when its
    # component still has a survivor; a component of size s needs s - 1 removals.
    removed = np.bincount(comp[~keep], minlength=comp.max() + 1)
    correct = np.minimum(removed, sizes - 1).sum()
    precision = correct / max(removed.sum(), 1)
    recall = correct / (sizes - 1).sum()
    assert precision >= 0.99 and recall >= 0.99, (precision, recall)
    assert (survivors == 1).mean() >= 0.99


def test_blocked_equals_the_plain_greedy_oracle():
    X, _ = planted_groups(n_groups=150, seed=1)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    km = spherical_kmeans(X, 4, seed=0)
    threshold = 0.98
    got = _semdedup_impl(Xn, km.labels, km.similarity, 4, threshold=threshold, block_size=7,
                         progress=False)
    ref = np.zeros(len(X), bool)
    for c in range(4):
        members = np.flatnonzero(km.labels == c)
        order = members[np.argsort(km.similarity[members], kind="stable")]  # farthest first
        ref |= greedy_oracle(X, order, threshold) & (km.labels == c)
    np.testing.assert_array_equal(got, ref)


def test_keeps_the_farthest_from_the_centroid_and_compares_with_kept_points_only():
    # A chain a ~ b ~ c with a !~ c: b goes, c stays (the reference code would drop c too).
    angles = np.array([0.0, 0.08, 0.16])
    X = np.c_[np.cos(angles), np.sin(angles)]
    np.testing.assert_array_equal(_dedup_ordered(X.astype(np.float32), np.cos(0.1), 2),
                                  [True, False, True])
    # The farthest member of a duplicate pair from the centroid survives.
    pair = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])
    np.testing.assert_array_equal(semdedup(pair, 0.01, n_clusters=1), [True, False, True])


def test_never_builds_an_n_by_n_matrix():
    m, d, block = 3000, 8, 128
    X = np.random.default_rng(0).normal(size=(m, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    tracemalloc.start()
    _dedup_ordered(X, 0.9999, block)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # An m x m float32 matrix is 36 MB; blocks of 128 need ~0.5 MB besides the m x d buffer.
    assert peak < 2 * m * d * 4 + 8 * block * block * 4, peak


def test_exact_duplicates_and_eps_monotonic():
    X, _ = planted_groups(n_groups=100, seed=2)
    X = np.r_[X, X[:20]]  # exact copies
    kept = [semdedup(X, eps, n_clusters=2).sum() for eps in (0.001, 0.02, 0.5)]
    assert kept[0] >= kept[1] >= kept[2]


def test_bad_input():
    X, _ = planted_groups(n_groups=20)
    with pytest.raises(ValueError, match=r"eps must be a number in \(0, 2\)"):
        semdedup(X, 0.0)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        semdedup(X, 0.1, n_clusters=len(X) + 1)
    with pytest.raises(ValueError, match="n_clusters must be a positive int or 'auto'"):
        semdedup(X, 0.1, n_clusters="many")
    X[5] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf in 1 row, first: \[5\]"):
        semdedup(X, 0.1)
