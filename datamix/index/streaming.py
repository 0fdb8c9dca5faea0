"""Spherical k-means of embeddings streamed from stores, shard by shard, on an execution engine.

The centroids are trained on the driver on a sample read from the stores (only the sampled rows
are read) — the sample, drawn from the same seed, that :func:`~datamix.index.spherical_kmeans`
draws from the same rows in memory, so the centroids are the same. The centroids then go to the
workers, and each worker assigns the rows of one store shard at a time (:class:`AssignShards`,
run by :mod:`datamix.engine`). Memory on the driver: the training sample (``256 * n_clusters``
rows by default) and 12 bytes a sample; on a worker, one shard.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from datamix.data.store import EmbeddingStore
from datamix.index._checks import check_embeddings, check_int, check_n_clusters, check_seed
from datamix.index.device import resolve_device
from datamix.index.kmeans import KMeansResult, _assign_impl, _train_centroids, _training_rows

__all__ = ["AssignShards", "kmeans_on_stores", "store_rows"]

logger = logging.getLogger(__name__)


class AssignShards:
    """Shard step of the score stage: the nearest centroid of every row of one store shard.

    Parameters
    ----------
    stores : dict of str to path
        Store folder of each source.
    centroids : ndarray of shape (n_clusters, n_features)
        Unit-norm float32 centroids.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where faiss searches, resolved on the worker.

    Each call takes one task ``{"source", "shard"}`` and returns ``source``, ``shard``,
    ``similarity`` (float32, cosine similarity to the nearest centroid) and ``label`` (int64), the
    last two of shape (1, m) for the shard's m rows. The search runs on one thread, so that the
    result is bitwise the same in any process.
    """

    def __init__(self, stores: Mapping[str, str | os.PathLike], centroids: np.ndarray, device: str = "auto"):
        self.paths = {name: Path(p) for name, p in stores.items()}
        self.C = np.ascontiguousarray(centroids, dtype=np.float32)
        self.device = resolve_device(device)
        self._stores: dict[str, EmbeddingStore] = {}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(batch["shard"]) != 1:
            raise ValueError(f"AssignShards takes one shard per call, got {len(batch['shard'])}")
        name, k = str(batch["source"][0]), int(batch["shard"][0])
        if name not in self._stores:
            self._stores[name] = EmbeddingStore(self.paths[name])
        X = check_embeddings(self._stores[name].read(k), name=f"embeddings of source {name!r} shard {k}",
                             normalize=True)
        # One BLAS/OpenMP thread: faiss's inner products (sgemm) round differently with another
        # number of threads (measured: up to 1e-7 apart), and the result must not depend on
        # where the shard runs (a process with all cores, or a 1-CPU Ray actor). Parallelism
        # comes from running shards side by side.
        with threadpool_limits(limits=1):
            similarity, labels = _assign_impl(X, self.C, device=self.device)
        return {"source": np.asarray([name]), "shard": np.asarray([k]), "similarity": similarity[None, :],
                "label": labels[None, :]}


def store_rows(stores: Sequence[EmbeddingStore], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted, of the stores concatenated in order) read shard by shard; float32 of
    shape (len(rows), dim). Only those rows are kept in memory (see :meth:`EmbeddingStore.read`)."""
    parts, offset = [], 0
    for store in stores:
        lo, hi = np.searchsorted(rows, [offset, offset + len(store)])
        local = rows[lo:hi] - offset
        for j, rec in enumerate(store.shards):
            a, b = np.searchsorted(local, [rec.start, rec.stop])
            if b > a:
                parts.append(store.read(j, local[a:b] - rec.start))
        offset += len(store)
    dim = stores[0].dim if stores else 0
    return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)


def kmeans_on_stores(stores: Mapping[str, EmbeddingStore | str | os.PathLike], n_clusters: int, *,
                     n_iter: int = 20, n_train: int | None = None, seed: int | np.random.Generator | None = 0,
                     device: str = "auto", engine=None) -> KMeansResult:
    """Spherical k-means of the rows of several stores (concatenated in order), streamed.

    The centroids are trained here on a sample read from the stores — the sample, and so the
    centroids, that :func:`~datamix.index.spherical_kmeans` gets from the same rows and seed — and
    every row is then assigned shard by shard on ``engine``: the same clusters; similarities equal
    to the last float32 bit or so (faiss searches a shard at a time).

    Parameters
    ----------
    stores : dict of str to EmbeddingStore or path
    n_clusters : int
    n_iter : int, default=20
    n_train : int, optional
        Training-sample size; default ``256 * n_clusters``.
    seed : int or numpy Generator, default=0
    device : {"auto", "cpu", "cuda"}, default="auto"
    engine : None, str or engine, optional

    Returns
    -------
    KMeansResult
        ``labels`` and ``similarity`` of shape (n_samples,) in store order.
    """
    from datamix.engine import get_engine

    opened = {nm: s if isinstance(s, EmbeddingStore) else EmbeddingStore(s) for nm, s in stores.items()}
    if not opened:
        raise ValueError("no stores to cluster")
    k = check_n_clusters(n_clusters, sum(len(s) for s in opened.values()))
    check_int(n_iter, "n_iter")
    check_int(n_train, "n_train", allow_none=True)
    return _kmeans_on_stores_impl(opened, k, n_iter=n_iter, n_train=n_train, rng=check_seed(seed),
                                  device=resolve_device(device), engine=get_engine(engine))


def _kmeans_on_stores_impl(stores: dict, k, *, n_iter, n_train, rng, device, engine) -> KMeansResult:
    """k-means on opened stores with checked options (see :func:`kmeans_on_stores`)."""
    names, opened = list(stores), list(stores.values())
    n = sum(len(s) for s in opened)
    rows, n_train = _training_rows(n, k, n_train, rng)
    sample = store_rows(opened, np.arange(n) if rows is None else rows)
    sample = check_embeddings(sample, name="k-means training sample", normalize=True)
    centroids = _train_centroids(sample, k, n_total=n, n_iter=n_iter, rng=rng, device=device)
    del sample
    similarity, labels = _assign_stores(engine, names, opened, centroids, device)
    inertia = float(n - similarity.sum(dtype=np.float64))
    return KMeansResult(centroids, labels, similarity, inertia, n_train)


def _assign_stores(engine, names, stores, centroids, device):
    """Similarity (float32) and cluster (int64) of every row of the stores, shard by shard on ``engine``."""
    offsets = dict(zip(names, np.cumsum([0] + [len(s) for s in stores])[:-1].tolist()))
    starts = {(nm, j): rec.start for nm, s in zip(names, stores) for j, rec in enumerate(s.shards)}
    n = sum(len(s) for s in stores)
    similarity = np.empty(n, dtype=np.float32)
    cluster = np.empty(n, dtype=np.int64)
    filled = np.zeros(n, dtype=bool)
    tasks = [{"source": nm, "shard": j} for nm, s in zip(names, stores) for j in range(len(s.shards))]
    fn_kwargs = {"stores": {nm: str(s.path) for nm, s in zip(names, stores)}, "centroids": centroids,
                 "device": device}
    for row in engine.map_shards(AssignShards, tasks, fn_kwargs=fn_kwargs, stage="score"):
        a = offsets[row["source"]] + starts[(row["source"], int(row["shard"]))]
        sl = slice(a, a + len(row["similarity"]))
        if filled[sl].any():
            raise RuntimeError(f"shard {row['shard']} of {row['source']!r} came back twice from the engine")
        similarity[sl], cluster[sl], filled[sl] = row["similarity"], row["label"], True
    if not filled.all():
        raise RuntimeError(f"{int((~filled).sum())} rows were not assigned by the engine")
    return similarity, cluster
