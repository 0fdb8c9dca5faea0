"""Compute-aware filtering threshold: how many of the best-ranked pools to keep for a budget (QQT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ._validation import check_number
from .qqt import QualityQuantity


@dataclass(frozen=True)
class PoolChoice:
    """Best prefix of quality-ranked pools for a training budget.

    Attributes
    ----------
    pools : tuple of str
        Chosen pools (the best ``n_pools`` of the ranking).
    n_pools : int
    keep_fraction : float
        Share of the data that survives filtering: ``kept_samples / total``.
    kept_samples : float
        Unique samples in the chosen pools.
    epochs : float
        Passes over the kept data implied by the budget, ``n / kept_samples``.
    predicted : float
        Predicted error of the chosen combination.
    errors : ndarray of shape (n_candidates,)
        Predicted error of keeping the top 1, 2, ... pools.
    keep_fractions : ndarray of shape (n_candidates,)
        Keep fraction of each candidate.
    n : float
        Budget (samples seen).
    """

    pools: tuple[str, ...]
    n_pools: int
    keep_fraction: float
    kept_samples: float
    epochs: float
    predicted: float
    errors: np.ndarray
    keep_fractions: np.ndarray
    n: float


def best_pool_combination(
    law: QualityQuantity,
    pools: Sequence[str] | Mapping[str, float],
    n: float,
    *,
    total: float | None = None,
) -> PoolChoice:
    """Choose how many of the best-ranked pools to train on for a budget of ``n`` samples seen.

    Candidates are the prefixes of the ranking (top-1, top-2, ...); each is scored with
    :meth:`QualityQuantity.predict_mixture` and the lowest predicted error wins. Small budgets favour
    few high-utility pools; large budgets favour more data, since repeating a small pool decays its
    utility (Goyal et al. 2024).

    Parameters
    ----------
    law : QualityQuantity
        Fitted (or :meth:`~datamix.laws.base.Law.from_params`) law that knows every pool.
    pools : sequence of str, or mapping of str to float
        Pools ranked by quality, best first: names (sizes from ``law.pool_sizes_``) or
        ``{name: unique samples}`` in rank order.
    n : float
        Training budget in samples seen (> 0).
    total : float, default=None
        Size of the whole dataset the keep fraction refers to; defaults to the sum of the pool sizes.

    Returns
    -------
    PoolChoice

    Raises
    ------
    ValueError
        On unknown pools, a non-positive budget or ``total`` smaller than the pools.

    Examples
    --------
    >>> law = QualityQuantity.from_params(
    ...     {"a": 1.0, "d": 0.1, "b[top]": -0.3, "b[rest]": -0.1, "tau[top]": 2.0, "tau[rest]": 2.0})
    >>> sizes = {"top": 1e6, "rest": 1e6}
    >>> best_pool_combination(law, sizes, 1e6).pools
    ('top',)
    """
    check_number(n, "n", low=0, low_open=True)
    names, sizes = law._pool_sizes(pools)
    cum = np.cumsum(sizes)
    total = float(cum[-1]) if total is None else total
    check_number(total, "total", low=float(cum[-1]))
    errors = np.array([float(law.predict_mixture(dict(zip(names[:m], sizes[:m])), n))
                       for m in range(1, len(names) + 1)])
    best = int(np.argmin(errors))
    return PoolChoice(
        pools=tuple(names[: best + 1]),
        n_pools=best + 1,
        keep_fraction=float(cum[best] / total),
        kept_samples=float(cum[best]),
        epochs=float(n / cum[best]),
        predicted=float(errors[best]),
        errors=errors,
        keep_fractions=cum / total,
        n=float(n),
    )
