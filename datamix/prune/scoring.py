"""Score several sources at once, on their union, so that scores are comparable across sources.

Clusters (prototypes, density) are fitted on all sources together, near-duplicates are found
across sources, and the training-dynamics metrics come from proxies trained on the union.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from datamix.prune.density import density_scores
from datamix.prune.dynamics import dynamics_scores, record_dynamics
from datamix.prune.prototypes import prototype_scores
from datamix.prune.semdedup import semdedup

logger = logging.getLogger(__name__)

EMBEDDING_METRICS = ("prototypes", "density")
DYNAMICS_METRICS = ("el2n", "grand", "forgetting", "margin")
METRICS = EMBEDDING_METRICS + DYNAMICS_METRICS


def check_request(metrics: Sequence[str], inputs: Mapping, what: str) -> list[str]:
    """The names of ``inputs`` (one per source), checked non-empty, and ``metrics`` checked known."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    if not inputs:
        raise ValueError(f"no {what} to score")
    return list(inputs)


def default_n_clusters(n_samples: int, labels: np.ndarray | None) -> int:
    """k for prototypes: the number of classes when known (Sorscher et al. take k within an order
    of magnitude of it), else about sqrt(n); never more than n."""
    k = len(np.unique(labels)) if labels is not None else int(round(np.sqrt(n_samples)))
    return max(1, min(k, n_samples))


def score_sources(embeddings: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray | None], *,
                  metrics: Sequence[str] = METRICS, n_clusters: int | None = None,
                  semdedup_eps: float | None = None, dynamics_model: str = "linear",
                  dynamics_epochs: int = 20, dynamics_seeds: Sequence[int] = (0, 1, 2),
                  seed: int = 0) -> dict[str, pd.DataFrame]:
    """Pruning scores of every sample of every source, computed on the union of the sources.

    Parameters
    ----------
    embeddings : dict of str to ndarray of shape (n_i, d)
    labels : dict of str to ndarray of shape (n_i,) or None
        Needed by the training-dynamics metrics.
    metrics : sequence of str
        Any of ``METRICS``; every score is higher = harder.
    n_clusters : int, optional
        k-means clusters for prototypes and density; default :func:`default_n_clusters`.
    semdedup_eps : float, optional
        When given, add a boolean ``semdedup_keep`` column (SemDeDup across all sources).
    dynamics_model, dynamics_epochs, dynamics_seeds
        The proxy runs whose training dynamics give EL2N, GraNd, forgetting and margin.
    seed : int

    Returns
    -------
    dict of str to DataFrame
        Per source, one row per sample (in source order) and one column per metric.
    """
    names = check_request(metrics, embeddings, "sources")
    X = np.concatenate([np.asarray(embeddings[n], dtype=np.float32) for n in names])
    sizes = [len(embeddings[n]) for n in names]
    needs_labels = [m for m in metrics if m in DYNAMICS_METRICS]
    y = None
    if needs_labels:
        missing = [n for n in names if labels.get(n) is None]
        if missing:
            raise ValueError(f"metrics {needs_labels} need labels; sources {missing} have none "
                             "(drop those metrics or give the sources a label field)")
        y = np.concatenate([np.asarray(labels[n]) for n in names])
    all_labels = y if y is not None else (np.concatenate([np.asarray(labels[n]) for n in names])
                                          if all(labels.get(n) is not None for n in names) else None)
    k = n_clusters or default_n_clusters(len(X), all_labels)
    columns: dict[str, np.ndarray] = {}
    if "prototypes" in metrics:
        columns["prototypes"] = prototype_scores(X, k, seed=seed)
    if "density" in metrics:
        columns["density"] = density_scores(X, k, seed=seed)
    if needs_labels:
        runs = record_dynamics(X, y, seeds=tuple(dynamics_seeds), model=dynamics_model, epochs=dynamics_epochs)
        columns.update({m: s for m, s in dynamics_scores(runs).items() if m in needs_labels})
    if semdedup_eps is not None:
        columns["semdedup_keep"] = semdedup(X, semdedup_eps, seed=seed)
    bounds = np.cumsum([0] + sizes)
    logger.info("scored %d samples of %d sources with %s (k=%d)", len(X), len(names), list(columns), k)
    return {n: pd.DataFrame({c: v[bounds[i]:bounds[i + 1]] for c, v in columns.items()})
            for i, n in enumerate(names)}
