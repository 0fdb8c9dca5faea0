"""Spherical k-means on faiss, with the training sample chosen by us and logged."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from datamix.index._checks import (
    check_embeddings,
    check_int,
    check_n_clusters,
    check_seed,
)
from datamix.index.device import resolve_device

__all__ = ["KMeansResult", "assign", "spherical_kmeans"]

logger = logging.getLogger(__name__)

#: Default training points per centroid. DESIGN §4 says about 1000 are enough; on 200k x 384
#: clustered vectors (benchmarks/prune_speed.py) 1000 lowered the cosine inertia by only ~1%
#: against 256 at twice the time, so the default is faiss's own 256, drawn and logged by us.
DEFAULT_POINTS_PER_CENTROID = 256
#: faiss warns below 39 points per centroid; we log instead of letting C++ print.
_FAISS_MIN_POINTS_PER_CENTROID = 39


@dataclass(frozen=True)
class KMeansResult:
    """Spherical k-means fit and the assignment of every point.

    Attributes
    ----------
    centroids : ndarray of shape (n_clusters, n_features), dtype float32
        Unit-norm centroids.
    labels : ndarray of shape (n_samples,), dtype int64
        Index of the nearest centroid (highest cosine similarity) of each point.
    similarity : ndarray of shape (n_samples,), dtype float32
        Cosine similarity of each point to its nearest centroid.
    inertia : float
        Cosine inertia :math:`\\sum_i (1 - \\cos(x_i, c_{l_i}))`, which is half the squared
        Euclidean inertia of the normalised points.
    n_train : int
        Number of points the centroids were trained on.
    """

    centroids: np.ndarray
    labels: np.ndarray
    similarity: np.ndarray
    inertia: float
    n_train: int


def spherical_kmeans(
    X: npt.ArrayLike,
    n_clusters: int,
    *,
    n_iter: int = 20,
    n_train: int | None = None,
    seed: int | np.random.Generator | None = 0,
    device: str = "auto",
) -> KMeansResult:
    """Spherical k-means (faiss) on L2-normalised rows, then assign every row.

    .. math::
        \\max_{c_1..c_k,\\ \\|c_j\\|=1} \\sum_i \\max_j \\langle x_i / \\|x_i\\|, c_j \\rangle

    faiss silently subsamples the training set to ``max_points_per_centroid * k`` points; here
    the training sample is drawn explicitly from ``seed`` and its size is logged, and faiss is
    told not to subsample again.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Embeddings; normalised here (the caller need not).
    n_clusters : int
        Number of centroids, ``1 <= n_clusters <= n_samples``.
    n_iter : int, default=20
        Lloyd iterations.
    n_train : int, optional
        Training-sample size. Default ``min(n_samples, 256 * n_clusters)``. Clipped to
        ``[n_clusters, n_samples]``.
    seed : int or numpy Generator, default=0
        Seeds the training sample and faiss's initialisation.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where faiss runs; ``"auto"`` uses the GPU when the faiss build sees one.

    Returns
    -------
    KMeansResult

    Raises
    ------
    ValueError
        For non-finite or zero rows, or ``n_clusters`` outside ``[1, n_samples]``.

    Examples
    --------
    >>> X = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    >>> res = spherical_kmeans(X, 2, seed=0)
    >>> sorted(np.bincount(res.labels).tolist())
    [2, 2]
    """
    X = check_embeddings(X, name="X", normalize=True)
    k = check_n_clusters(n_clusters, X.shape[0])
    check_kmeans_options(n_iter, n_train)
    return _spherical_kmeans_impl(X, k, n_iter=n_iter, n_train=n_train, rng=check_seed(seed),
                                  device=resolve_device(device))


def check_kmeans_options(n_iter: int, n_train: int | None) -> None:
    """Validate the k-means options shared by every caller of :func:`_spherical_kmeans_impl`."""
    check_int(n_iter, "n_iter")
    check_int(n_train, "n_train", allow_none=True)


def _spherical_kmeans_impl(X, k, *, n_iter, n_train, rng, device) -> KMeansResult:
    """Spherical k-means on clean input: unit-norm float32 C-contiguous ``X``, valid ``k``."""
    n = X.shape[0]
    rows, n_train = _training_rows(n, k, n_train, rng)
    sample = X if rows is None else X[rows]
    centroids = _train_centroids(sample, k, n_total=n, n_iter=n_iter, rng=rng, device=device)
    similarity, labels = _assign_impl(X, centroids, device=device)
    inertia = float(n - similarity.sum(dtype=np.float64))
    return KMeansResult(centroids, labels, similarity, inertia, n_train)


def _training_rows(n, k, n_train, rng):
    """Sorted rows of the k-means training sample (None: all ``n`` rows) and its size.

    Draws from ``rng`` exactly as :func:`_spherical_kmeans_impl` does, so that a caller holding the
    rows elsewhere (an embedding store, read shard by shard) trains the same centroids.
    """
    if n_train is None:
        n_train = DEFAULT_POINTS_PER_CENTROID * k
    n_train = int(min(max(n_train, k), n))
    if n_train < n:
        return np.sort(rng.choice(n, size=n_train, replace=False)), n_train
    return None, n_train


def _train_centroids(sample, k, *, n_total, n_iter, rng, device):
    """faiss spherical k-means on a clean unit-norm float32 training ``sample`` (drawn from
    ``n_total`` points); unit-norm float32 centroids of shape (k, d)."""
    n_train, d = sample.shape
    per_centroid = math.ceil(n_train / k)
    if per_centroid < _FAISS_MIN_POINTS_PER_CENTROID:
        # A warning when our own subsampling caused it (raise n_train), else just a note.
        level = logging.WARNING if n_train < n_total else logging.INFO
        logger.log(level, "k-means: only %d training points per centroid (%d points, k=%d); "
                   "centroids may be poor, consider a smaller n_clusters or a larger n_train",
                   per_centroid, n_train, k)
    km = faiss.Kmeans(
        d, k, niter=n_iter, spherical=True, seed=int(rng.integers(2**31 - 1)),
        max_points_per_centroid=per_centroid, min_points_per_centroid=1,
        gpu=device == "cuda", verbose=False,
    )
    km.train(sample)
    logger.info("k-means: trained k=%d on %d of %d points (%d per centroid), %d of at most %d "
                "iterations, %s", k, n_train, n_total, per_centroid, len(km.obj), n_iter, device)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def assign(X: npt.ArrayLike, centroids: npt.ArrayLike, *, device: str = "auto"):
    """Nearest centroid by cosine similarity.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Points; normalised here.
    centroids : array-like of shape (n_clusters, n_features)
        Centroids; normalised here.
    device : {"auto", "cpu", "cuda"}, default="auto"

    Returns
    -------
    similarity : ndarray of shape (n_samples,), dtype float32
        Cosine similarity to the nearest centroid.
    labels : ndarray of shape (n_samples,), dtype int64
        Index of the nearest centroid.
    """
    X = check_embeddings(X, name="X", normalize=True)
    C = check_embeddings(centroids, name="centroids", normalize=True)
    if C.shape[1] != X.shape[1]:
        raise ValueError(f"centroids have {C.shape[1]} features but X has {X.shape[1]}")
    return _assign_impl(X, C, device=resolve_device(device))


def _assign_impl(X, C, *, device):
    """Nearest unit centroid by inner product; clean unit-norm float32 inputs assumed."""
    index = faiss.IndexFlatIP(C.shape[1])
    if device == "cuda":
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(C)
    D, I = index.search(X, 1)
    return D[:, 0], I[:, 0].astype(np.int64)
