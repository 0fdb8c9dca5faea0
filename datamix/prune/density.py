"""Density-based pruning (Abbas et al. 2024): keep more of complex concept clusters.

Each spherical k-means cluster gets a complexity :math:`C_j = d^{inter}_j \\, d^{intra}_j`
(its mean cosine distance to its nearest centroids, times its members' mean cosine distance to
its own centroid) and a share :math:`p_j = \\operatorname{softmax}(C / \\tau)_j` of the kept
budget: dense, well-separated clusters are pruned most, sparse ones crowded by other concepts
least.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from datamix.index._checks import (
    check_embeddings,
    check_int,
    check_n_clusters,
    check_seed,
)
from datamix.index.device import resolve_device
from datamix.index.kmeans import _spherical_kmeans_impl, check_kmeans_options
from datamix.index.neighbors import _knn_impl

__all__ = ["density_quota", "density_scores"]

logger = logging.getLogger(__name__)

_WITHIN = ("hard", "easy", "random")


def density_scores(
    emb: npt.ArrayLike,
    n_clusters: int = 100,
    *,
    n_neighbors: int = 20,
    temperature: float = 0.5,
    within: str = "hard",
    n_iter: int = 20,
    n_train: int | None = None,
    seed: int | np.random.Generator | None = 0,
    device: str = "auto",
) -> np.ndarray:
    """Per-sample scores that make ``select(..., keep="hard")`` prune by cluster complexity.

    Cluster ``j`` gets the probability

    .. math::
        p_j = \\operatorname{softmax}_j\\big(d^{inter}_j d^{intra}_j / \\tau\\big), \\quad
        d^{intra}_j = \\overline{1 - \\cos(x_i, c_j)}_{i \\in j}, \\quad
        d^{inter}_j = \\overline{1 - \\cos(c_j, c_l)}_{l \\in \\mathrm{NN}(j)}

    and the sample of rank ``r`` in cluster ``j`` the score :math:`s = \\log p_j - \\log(r + 1/2)`.
    Keeping the ``N`` highest scores, ``select(scores, f, keep="hard")``, therefore keeps
    ``round(p_j t)`` samples of cluster ``j`` (for the threshold ``t`` that makes them sum to
    ``N``), in rank order: the quota :func:`density_quota` solves for ``N`` whenever no cluster
    is kept whole. When one is, its surplus goes to the other clusters in proportion to ``p``
    (the paper's quadratic program spreads it evenly instead).

    The scores are built for ``keep="hard"``; choose the order inside clusters with ``within``
    rather than selecting ``keep="easy"`` (which would invert the cluster quotas too).

    Parameters
    ----------
    emb : array-like of shape (n_samples, n_features)
        Embeddings (normalised here).
    n_clusters : int, default=100
        Number of k-means clusters.
    n_neighbors : int, default=20
        Nearest centroids averaged in :math:`d^{inter}` (capped at ``n_clusters - 1``).
    temperature : float, default=0.5
        Softmax temperature :math:`\\tau` (0.5 is the reference code's default); lower
        concentrates the budget on the most complex clusters.
    within : {"hard", "easy", "random"}, default="hard"
        Rank inside each cluster: ``r = 0`` is the farthest from the centroid (``"hard"``, the
        paper's choice), the nearest (``"easy"``), or a random member (``"random"``).
    n_iter : int, default=20
        k-means iterations.
    n_train : int, optional
        k-means training-sample size, see :func:`datamix.index.spherical_kmeans`.
    seed : int or numpy Generator, default=0
    device : {"auto", "cpu", "cuda"}, default="auto"

    Returns
    -------
    scores : ndarray of shape (n_samples,), dtype float64
        Higher = kept first.

    Raises
    ------
    ValueError
        For NaN/inf or zero rows, ``n_clusters > n_samples``, or non-positive options.

    References
    ----------
    Abbas, Rusak, Tirumala, Brendel, Chaudhuri, Morcos. Effective pruning of web-scale datasets
    based on complexity of concept clusters. ICLR 2024.
    """
    X = check_embeddings(emb, normalize=True)
    k = check_n_clusters(n_clusters, X.shape[0])
    check_int(n_neighbors, "n_neighbors")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if within not in _WITHIN:
        raise ValueError(f"within must be one of {_WITHIN}, got {within!r}")
    check_kmeans_options(n_iter, n_train)
    device = resolve_device(device)
    rng = check_seed(seed)
    km = _spherical_kmeans_impl(X, k, n_iter=n_iter, n_train=n_train, rng=rng, device=device)
    probs = _cluster_probabilities(km.centroids, km.labels, km.similarity,
                                   n_neighbors=int(n_neighbors), temperature=float(temperature),
                                   device=device)
    hardness = {"hard": -km.similarity, "easy": km.similarity,
                "random": rng.random(X.shape[0])}[within]
    return _density_scores_impl(km.labels, hardness, probs)


def _cluster_probabilities(centroids, labels, similarity, *, n_neighbors, temperature, device):
    """Softmax of cluster complexity ``d_inter * d_intra`` over the clusters (k,)."""
    k = centroids.shape[0]
    sizes = np.bincount(labels, minlength=k)
    dist_sum = np.bincount(labels, weights=1.0 - similarity.astype(np.float64), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_intra = dist_sum / sizes
    if k > 1:
        D, _ = _knn_impl(centroids, centroids, min(n_neighbors, k - 1), metric="cosine",
                         self_search=True, device=device)
        d_inter = D.astype(np.float64).mean(axis=1)
    else:
        d_inter = np.ones(1)
    complexity = d_inter * d_intra
    empty = ~np.isfinite(complexity)
    if empty.any():  # empty clusters carry no samples; any value works, use the mean
        complexity[empty] = complexity[~empty].mean()
    z = complexity / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    logger.debug("density: complexity in [%.4g, %.4g], cluster shares in [%.4g, %.4g]",
                 complexity.min(), complexity.max(), p.min(), p.max())
    return p


def _density_scores_impl(labels, hardness, probs):
    """``log p_c - log(rank + 1/2)`` with rank 0 the member of cluster c of highest hardness."""
    order = np.lexsort((-hardness, labels))  # by cluster, hardest first
    starts = np.concatenate(([0], np.cumsum(np.bincount(labels, minlength=probs.size))))
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(labels.size) - starts[labels[order]]
    return np.log(probs[labels]) - np.log(rank + 0.5)


def density_quota(
    sizes: npt.ArrayLike,
    probs: npt.ArrayLike,
    n_keep: int,
    *,
    min_per_cluster: int = 1,
) -> np.ndarray:
    """Samples to keep per cluster: the quadratic program of density-based pruning.

    .. math::
        \\min_x \\sum_j (x_j - p_j N)^2 \\quad \\text{s.t.} \\quad \\sum_j x_j = N, \\quad
        \\min(m, n_j) \\le x_j \\le n_j

    solved exactly by water-filling (:math:`x_j = \\operatorname{clip}(p_j N + \\lambda)` with
    :math:`\\lambda` found by bisection), then rounded to integers by largest remainders.

    Parameters
    ----------
    sizes : array-like of shape (n_clusters,)
        Samples in each cluster, :math:`n_j`.
    probs : array-like of shape (n_clusters,)
        Target share of each cluster, :math:`p_j` (non-negative, normalised here).
    n_keep : int
        Budget :math:`N`, at most ``sum(sizes)``.
    min_per_cluster : int, default=1
        Lower bound :math:`m` per non-empty cluster.

    Returns
    -------
    quota : ndarray of shape (n_clusters,), dtype int64
        Sums to ``n_keep``.

    Examples
    --------
    >>> density_quota([10, 10, 2], [0.5, 0.25, 0.25], 8).tolist()
    [4, 2, 2]
    >>> density_quota([10, 10, 1], [0.5, 0.25, 0.25], 9).tolist()  # third cluster is kept whole
    [5, 3, 1]
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if sizes.ndim != 1 or probs.shape != sizes.shape or (sizes < 0).any() or (probs < 0).any():
        raise ValueError(f"sizes and probs must be non-negative 1-D arrays of one shape, got "
                         f"{sizes.shape} and {probs.shape}")
    if not 0 <= n_keep <= sizes.sum():
        raise ValueError(f"n_keep must be in [0, {int(sizes.sum())}], got {n_keep}")
    probs = probs / probs.sum()
    lower = np.minimum(min_per_cluster, sizes)
    if lower.sum() > n_keep:
        lower = np.zeros_like(sizes)
    target = probs * n_keep

    def kept(lam):
        return np.clip(target + lam, lower, sizes)

    lo, hi = -n_keep - 1.0, float(sizes.max()) + 1.0
    for _ in range(200):  # bisection on a monotone function; 200 halvings reach float precision
        mid = 0.5 * (lo + hi)
        if kept(mid).sum() < n_keep:
            lo = mid
        else:
            hi = mid
    x = kept(hi)
    quota = np.floor(x + 1e-9).astype(np.int64)
    short = int(n_keep - quota.sum())
    room = quota < sizes
    if short > 0:
        order = np.argsort(-np.where(room, x - quota, -np.inf), kind="stable")
        quota[order[:short]] += 1
    return quota
