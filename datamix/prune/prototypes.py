"""Self-supervised prototype scores (Sorscher et al. 2022): cosine distance to the nearest centroid."""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from datamix.index._checks import check_embeddings, check_int, check_n_clusters, check_seed
from datamix.index.device import resolve_device
from datamix.index.kmeans import _assign_impl, _spherical_kmeans_impl, check_kmeans_options
from datamix.prune._checks import check_labels

__all__ = ["prototype_scores"]

logger = logging.getLogger(__name__)


def prototype_scores(
    emb: npt.ArrayLike,
    n_clusters: int = 100,
    *,
    labels: npt.ArrayLike | None = None,
    centroids: npt.ArrayLike | None = None,
    n_iter: int = 20,
    n_train: int | None = None,
    seed: int | np.random.Generator | None = 0,
    device: str = "auto",
) -> np.ndarray:
    """Self-supervised prototype difficulty: cosine distance to the nearest k-means centroid.

    .. math::
        s_i = 1 - \\max_j \\cos(x_i, c_j)

    with :math:`c_j` the centroids of spherical k-means (faiss) on the L2-normalised embeddings.
    Higher = harder (prototypical samples sit near a centroid). Sorscher et al. (2022) take the
    number of clusters within an order of magnitude of the number of classes.

    Parameters
    ----------
    emb : array-like of shape (n_samples, n_features)
        Embeddings (normalised here).
    n_clusters : int, default=100
        Number of prototypes (per class when ``labels`` is given, capped at the class size).
    labels : array-like of shape (n_samples,), optional
        Class-conditional variant: cluster each class on its own and score each sample against
        the prototypes of its own class.
    centroids : array-like of shape (n_centroids, n_features), optional
        Precomputed prototypes (normalised here); no k-means runs and ``n_clusters`` is ignored.
        Not combinable with ``labels``.
    n_iter : int, default=20
        k-means iterations.
    n_train : int, optional
        k-means training-sample size, see :func:`datamix.index.spherical_kmeans`.
    seed : int or numpy Generator, default=0
    device : {"auto", "cpu", "cuda"}, default="auto"

    Returns
    -------
    scores : ndarray of shape (n_samples,), dtype float64
        In [0, 2]; higher = harder.

    Raises
    ------
    ValueError
        For NaN/inf or zero rows, ``n_clusters > n_samples``, or ``labels`` of the wrong length.

    References
    ----------
    Sorscher, Geirhos, Shekhar, Ganguli, Morcos. Beyond neural scaling laws: beating power law
    scaling via data pruning. NeurIPS 2022.

    Examples
    --------
    >>> emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> prototype_scores(emb, centroids=[[1.0, 1.0]]).round(4).tolist()
    [0.2929, 0.2929]
    """
    X = check_embeddings(emb, normalize=True)
    labels = check_labels(labels, X.shape[0], against="emb")
    device = resolve_device(device)
    if centroids is not None:
        if labels is not None:
            raise ValueError("pass either centroids or labels, not both")
        C = check_embeddings(centroids, name="centroids", normalize=True)
        if C.shape[1] != X.shape[1]:
            raise ValueError(f"centroids have {C.shape[1]} features but emb has {X.shape[1]}")
        return _prototype_scores_impl(X, C, device=device)
    if labels is None:
        check_n_clusters(n_clusters, X.shape[0])
    else:
        check_int(n_clusters, "n_clusters")  # per class, capped at each class's size below
    check_kmeans_options(n_iter, n_train)
    rng = check_seed(seed)
    if labels is None:
        km = _spherical_kmeans_impl(X, n_clusters, n_iter=n_iter, n_train=n_train, rng=rng,
                                    device=device)
        return 1.0 - km.similarity.astype(np.float64)  # k-means assigned every point already
    scores = np.empty(X.shape[0])
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        km = _spherical_kmeans_impl(X[idx], min(n_clusters, idx.size), n_iter=n_iter,
                                    n_train=n_train, rng=rng, device=device)
        scores[idx] = 1.0 - km.similarity.astype(np.float64)
    return scores


def _prototype_scores_impl(X, C, *, device):
    """``1 - max_j <x_i, c_j>`` for clean unit-norm float32 ``X`` (n, d) and ``C`` (k, d)."""
    similarity, _ = _assign_impl(X, C, device=device)
    return 1.0 - similarity.astype(np.float64)
