"""Pruning metrics and selection: prototypes, SemDeDup, density, training dynamics, CCS.

Every metric maps samples to one score each, higher = harder; :func:`select` turns scores into
kept indices and :func:`evaluate_metrics` scores the metrics against random pruning. For text,
:func:`importance_scores` (higher = more target-like, i.e. better) and :func:`dedup_sources`
(exact and near-duplicates across sources) need no labels.
"""

from datamix.prune.dedup import dedup_sources, exact_duplicates
from datamix.prune.density import density_quota, density_scores
from datamix.prune.dynamics import dynamics_scores, el2n, forgetting, grand, margin, record_dynamics
from datamix.prune.evaluate import (
    best_per_size,
    default_trainer,
    evaluate_metrics,
    fit_scaling,
    plot_metrics,
    summarize_metrics,
)
from datamix.prune.lm_scores import importance_scores
from datamix.prune.prototypes import prototype_scores
from datamix.prune.select import n_kept, select
from datamix.prune.semdedup import semdedup
from datamix.prune.streaming import score_stores

__all__ = [
    "best_per_size",
    "dedup_sources",
    "exact_duplicates",
    "importance_scores",
    "default_trainer",
    "density_quota",
    "density_scores",
    "dynamics_scores",
    "el2n",
    "evaluate_metrics",
    "fit_scaling",
    "forgetting",
    "grand",
    "margin",
    "n_kept",
    "plot_metrics",
    "prototype_scores",
    "record_dynamics",
    "score_stores",
    "select",
    "semdedup",
    "summarize_metrics",
]
