"""Score embeddings streamed from stores, shard by shard, on an execution engine.

The embedding metrics (prototypes, density) never hold all embeddings: spherical k-means runs on
the stores through :func:`datamix.index.streaming.kmeans_on_stores` (centroids trained on a sample
read from the stores, then every shard assigned by a worker of the engine), and the per-sample
similarity and cluster that come back give the prototype scores and, through the cluster shares
computed here, the density scores. Memory: the k-means training sample (``256 * n_clusters`` rows
by default) and a few bytes a sample.

The training-dynamics metrics (EL2N, GraNd, forgetting, margin) train a proxy on every sample and
SemDeDup compares samples within clusters: both load all embeddings on the driver, as
:func:`~datamix.prune.scoring.score_sources` does.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from datamix.data.store import EmbeddingStore
from datamix.index._checks import check_n_clusters, check_seed
from datamix.index.device import resolve_device
from datamix.index.streaming import _kmeans_on_stores_impl
from datamix.prune.density import _cluster_probabilities, _density_scores_impl
from datamix.prune.scoring import DYNAMICS_METRICS, EMBEDDING_METRICS, check_request, default_n_clusters

__all__ = ["score_stores"]

logger = logging.getLogger(__name__)

#: k-means options of the embedding metrics: the defaults of prototype_scores and density_scores
N_ITER = 20
DENSITY_NEIGHBORS, DENSITY_TEMPERATURE = 20, 0.5


def score_stores(stores: Mapping[str, EmbeddingStore | str | os.PathLike],
                 labels: Mapping[str, np.ndarray | None] | None = None, *,
                 metrics: Sequence[str] = EMBEDDING_METRICS, n_clusters: int | None = None,
                 n_train: int | None = None, semdedup_eps: float | None = None,
                 dynamics_model: str = "linear", dynamics_epochs: int = 20,
                 dynamics_seeds: Sequence[int] = (0, 1, 2), seed: int = 0, device: str = "auto",
                 engine=None) -> dict[str, pd.DataFrame]:
    """Pruning scores of every sample of every store, on their union, streamed shard by shard.

    Gives the scores of :func:`~datamix.prune.scoring.score_sources` on the stores' embeddings:
    the same k-means centroids (same training sample and seed), hence the same clusters; the
    assignment runs per shard, so similarities may differ from an all-at-once search in the last
    float32 bit. Every engine runs the same per-shard step, so local and Ray results are equal.

    .. math::
        s^{proto}_i = 1 - \\max_j \\cos(x_i, c_j)

    Parameters
    ----------
    stores : dict of str to EmbeddingStore or path
        One complete store per source; rows of a source are scored in store order.
    labels : dict of str to ndarray of shape (n_i,) or None, optional
        Needed by the training-dynamics metrics; with labels for every source the default
        ``n_clusters`` is the number of classes.
    metrics : sequence of str, default=("prototypes", "density")
        Any of ``METRICS``; higher = harder.
    n_clusters : int, optional
        k-means clusters; default :func:`~datamix.prune.scoring.default_n_clusters`.
    n_train : int, optional
        k-means training-sample size (default ``256 * n_clusters``), read from the stores.
    semdedup_eps : float, optional
        Add a boolean ``semdedup_keep`` column (loads all embeddings).
    dynamics_model, dynamics_epochs, dynamics_seeds
        Proxy runs for EL2N, GraNd, forgetting and margin (load all embeddings).
    seed : int
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where faiss runs (the driver for k-means, each worker for assignment).
    engine : None, str or engine, optional
        Where shards are assigned (see :func:`datamix.engine.get_engine`); default local.

    Returns
    -------
    dict of str to DataFrame
        Per source, one row per sample (store order) and one column per metric.
    """
    from datamix.engine import get_engine

    names = check_request(metrics, stores, "stores")
    opened = [s if isinstance(s, EmbeddingStore) else EmbeddingStore(s) for s in stores.values()]
    dims = {n: s.dim for n, s in zip(names, opened)}
    if len(set(dims.values())) != 1:
        raise ValueError(f"stores of different dimensions {dims}; score embeddings of one model together")
    sizes = [len(s) for s in opened]
    n = int(sum(sizes))
    labels = dict(labels or {})
    needs_labels = [m for m in metrics if m in DYNAMICS_METRICS]
    if needs_labels and any(labels.get(nm) is None for nm in names):
        missing = [nm for nm in names if labels.get(nm) is None]
        raise ValueError(f"metrics {needs_labels} need labels; sources {missing} have none "
                         "(drop those metrics or give the sources a label field)")
    all_labels = (np.concatenate([np.asarray(labels[nm]) for nm in names])
                  if all(labels.get(nm) is not None for nm in names) else None)
    k = check_n_clusters(n_clusters or default_n_clusters(n, all_labels), n)
    columns: dict[str, np.ndarray] = {}
    if any(m in EMBEDDING_METRICS for m in metrics):
        device = resolve_device(device)
        km = _kmeans_on_stores_impl(dict(zip(names, opened)), k, n_iter=N_ITER, n_train=n_train,
                                    rng=check_seed(seed), device=device, engine=get_engine(engine))
        if "prototypes" in metrics:
            columns["prototypes"] = 1.0 - km.similarity.astype(np.float64)
        if "density" in metrics:
            probs = _cluster_probabilities(km.centroids, km.labels, km.similarity, n_neighbors=DENSITY_NEIGHBORS,
                                           temperature=DENSITY_TEMPERATURE, device=device)
            columns["density"] = _density_scores_impl(km.labels, -km.similarity, probs)
    if needs_labels or semdedup_eps is not None:
        from datamix.prune.dynamics import dynamics_scores, record_dynamics
        from datamix.prune.semdedup import semdedup

        X = np.concatenate([s.load() for s in opened])
        if needs_labels:
            runs = record_dynamics(X, all_labels, seeds=tuple(dynamics_seeds), model=dynamics_model,
                                   epochs=dynamics_epochs)
            columns.update({m: v for m, v in dynamics_scores(runs).items() if m in needs_labels})
        if semdedup_eps is not None:
            columns["semdedup_keep"] = semdedup(X, semdedup_eps, seed=seed)
        del X
    bounds = np.cumsum([0] + sizes)
    logger.info("scored %d samples of %d stores with %s (k=%d)", n, len(names), list(columns), k)
    return {nm: pd.DataFrame({c: v[bounds[i]:bounds[i + 1]] for c, v in columns.items()})
            for i, nm in enumerate(names)}
