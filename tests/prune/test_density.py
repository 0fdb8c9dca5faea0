"""Density-based pruning: cluster shares from intra/inter distances, quotas from the QP."""

import numpy as np
import pytest
from scipy.optimize import minimize

from datamix.index import spherical_kmeans
from datamix.prune import density_quota, density_scores, select
from datamix.prune.density import _cluster_probabilities


def three_clusters(seed=0, n=300):
    """Three clusters along the axes of R^16, tight to spread out."""
    rng = np.random.default_rng(seed)
    centers = np.eye(16)[:3]
    return np.concatenate([c + rng.normal(scale=s, size=(n, 16))
                           for c, s in zip(centers, (0.05, 0.15, 0.3))]).astype(np.float32)


def numpy_probabilities(X, km, n_neighbors, temperature):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    k = km.centroids.shape[0]
    d_intra = np.array([np.mean(1 - Xn[km.labels == j] @ km.centroids[j]) for j in range(k)])
    S = km.centroids @ km.centroids.T
    np.fill_diagonal(S, -np.inf)
    d_inter = np.array([np.mean(1 - np.sort(S[j])[::-1][:n_neighbors]) for j in range(k)])
    z = d_inter * d_intra / temperature
    return np.exp(z) / np.exp(z).sum()


def test_cluster_probabilities_match_numpy():
    X = np.random.default_rng(1).normal(size=(600, 8)).astype(np.float32)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    km = spherical_kmeans(Xn, 12, seed=0)
    got = _cluster_probabilities(km.centroids, km.labels, km.similarity, n_neighbors=4,
                                 temperature=0.05, device="cpu")
    np.testing.assert_allclose(got, numpy_probabilities(Xn, km, 4, 0.05), rtol=1e-4)


def test_spread_out_clusters_keep_more_and_hardest_first():
    X = three_clusters()
    scores = density_scores(X, 3, temperature=0.5, seed=0)
    idx = select(scores, 0.2, keep="hard")
    counts = np.bincount(idx // 300, minlength=3)
    assert counts[0] < counts[1] < counts[2], counts
    # Inside a cluster the kept samples are the farthest from its centroid.
    km = spherical_kmeans(X, 3, seed=0)
    for j in range(3):
        members = np.flatnonzero(km.labels == j)
        kept = np.intersect1d(members, idx)
        if 0 < kept.size < members.size:
            dropped = np.setdiff1d(members, kept)
            assert km.similarity[kept].max() <= km.similarity[dropped].min()


def test_selection_counts_follow_the_quota_when_no_cluster_is_kept_whole():
    X = three_clusters(n=400)
    km = spherical_kmeans(X, 3, seed=0)
    probs = _cluster_probabilities(km.centroids, km.labels, km.similarity, n_neighbors=20,
                                   temperature=0.5, device="cpu")
    scores = density_scores(X, 3, temperature=0.5, seed=0)
    for fraction in (0.05, 0.2, 0.4):
        idx = select(scores, fraction, keep="hard")
        counts = np.bincount(km.labels[idx], minlength=3)
        quota = density_quota(np.bincount(km.labels), probs, idx.size)
        assert (quota < np.bincount(km.labels)).all()
        np.testing.assert_allclose(counts, quota, atol=1)


@pytest.mark.parametrize("within", ["easy", "random"])
def test_within_changes_order_not_quotas(within):
    X = three_clusters()
    hard = select(density_scores(X, 3, seed=0), 0.3)
    other = select(density_scores(X, 3, seed=0, within=within), 0.3)
    km = spherical_kmeans(X, 3, seed=0)
    np.testing.assert_allclose(np.bincount(km.labels[other], minlength=3),
                               np.bincount(km.labels[hard], minlength=3), atol=1)
    assert not np.array_equal(hard, other)


def test_density_quota_known_answers_and_qp_optimum():
    np.testing.assert_array_equal(density_quota([10, 10, 2], [0.5, 0.25, 0.25], 8), [4, 2, 2])
    # The capped cluster's surplus is spread evenly (additive water level).
    np.testing.assert_array_equal(density_quota([10, 10, 1], [0.5, 0.25, 0.25], 9), [5, 3, 1])
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 50, size=12).astype(float)
    probs = rng.dirichlet(np.ones(12))
    N = int(0.3 * sizes.sum())
    quota = density_quota(sizes, probs, N)
    assert quota.sum() == N and (quota <= sizes).all() and (quota >= 1).all()
    # The continuous QP optimum, from a general solver, rounds to within 1 of the quota.
    res = minimize(lambda x: np.sum((x - probs * N) ** 2), x0=np.full(12, N / 12),
                   jac=lambda x: 2 * (x - probs * N), method="SLSQP",
                   bounds=list(zip(np.minimum(1, sizes), sizes)),
                   constraints=[{"type": "eq", "fun": lambda x: x.sum() - N}])
    np.testing.assert_allclose(quota, res.x, atol=1.0)


def test_bad_input():
    X = three_clusters(n=20)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        density_scores(X, 3, temperature=0)
    with pytest.raises(ValueError, match="within must be one of"):
        density_scores(X, 3, within="middle")
    with pytest.raises(ValueError, match="larger than the number of samples"):
        density_scores(X, 61)
    with pytest.raises(ValueError, match=r"n_keep must be in \[0, 3\]"):
        density_quota([1, 2], [0.5, 0.5], 4)
