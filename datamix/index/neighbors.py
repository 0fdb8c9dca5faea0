"""Exact k-nearest-neighbour search on faiss flat indexes (GPU when present)."""

from __future__ import annotations

import logging

import faiss
import numpy as np
import numpy.typing as npt

from datamix.index._checks import check_embeddings, check_int
from datamix.index.device import resolve_device

__all__ = ["knn"]

logger = logging.getLogger(__name__)

_METRICS = ("cosine", "ip", "l2")


def knn(
    X: npt.ArrayLike,
    k: int,
    *,
    queries: npt.ArrayLike | None = None,
    metric: str = "cosine",
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of ``queries`` (default: of ``X`` itself, self excluded).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Database points.
    k : int
        Neighbours per query, ``1 <= k <= n_samples`` (``n_samples - 1`` when ``queries`` is
        None, as each point's own entry is dropped).
    queries : array-like of shape (n_queries, n_features), optional
        Query points. ``None`` searches ``X`` against itself and drops each point's own entry.
    metric : {"cosine", "ip", "l2"}, default="cosine"
        ``"cosine"``: rows normalised here, ``D`` is the cosine distance ``1 - cos``;
        ``"ip"``: ``D`` is the inner product (largest first); ``"l2"``: ``D`` is the squared
        Euclidean distance.
    device : {"auto", "cpu", "cuda"}, default="auto"

    Returns
    -------
    D : ndarray of shape (n_queries, k), dtype float32
        Distances (similarities for ``"ip"``), best first.
    I : ndarray of shape (n_queries, k), dtype int64
        Indices into ``X``.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    >>> D, I = knn(X, 1, metric="l2")
    >>> I.ravel().tolist(), D.ravel().tolist()
    ([1, 0, 1], [1.0, 1.0, 4.0])
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    normalize = metric == "cosine"
    X = check_embeddings(X, name="X", normalize=normalize)
    self_search = queries is None
    Q = X if self_search else check_embeddings(queries, name="queries", normalize=normalize)
    if Q.shape[1] != X.shape[1]:
        raise ValueError(f"queries have {Q.shape[1]} features but X has {X.shape[1]}")
    k_max = X.shape[0] - 1 if self_search else X.shape[0]
    check_int(k, "k", high=k_max)
    return _knn_impl(X, Q, int(k), metric=metric, self_search=self_search,
                     device=resolve_device(device))


def _knn_impl(X, Q, k, *, metric, self_search, device):
    """Flat-index search on clean float32 input (normalised already for ``"cosine"``)."""
    index = faiss.IndexFlatL2(X.shape[1]) if metric == "l2" else faiss.IndexFlatIP(X.shape[1])
    if device == "cuda":
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(X)
    D, I = index.search(Q, k + 1 if self_search else k)
    if self_search:
        D, I = _drop_self(D, I)
    if metric == "cosine":
        D = 1.0 - D
    return D, I.astype(np.int64)


def _drop_self(D, I):
    """Remove each query's own index from a (n, k+1) result; the last column if it is absent.

    With exact duplicates the query's own entry need not come first, so it is looked up.
    """
    n, kp1 = I.shape
    keep = I != np.arange(n)[:, None]
    no_self = keep.all(axis=1)
    keep[no_self, -1] = False
    return D[keep].reshape(n, kp1 - 1), I[keep].reshape(n, kp1 - 1)
