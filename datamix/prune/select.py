"""Turn per-sample scores into a kept subset: keep hard, easy, random, or CCS; class-balanced."""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

from datamix.index._checks import check_int, check_seed
from datamix.prune._checks import check_fraction, check_labels, check_scores

__all__ = ["BALANCES", "KEEPS", "fill_from_smallest", "n_kept", "select"]

logger = logging.getLogger(__name__)

KEEPS = ("hard", "easy", "random", "ccs")
BALANCES = ("none", "proportional", "equal")


def n_kept(n_samples: int, fraction: float) -> int:
    """Number of samples :func:`select` keeps: ``round(fraction * n_samples)``, at least 1."""
    return max(1, int(math.floor(fraction * n_samples + 0.5)))


def select(
    scores: npt.ArrayLike,
    fraction: float,
    *,
    keep: str = "hard",
    labels: npt.ArrayLike | None = None,
    balance: str = "proportional",
    beta: float = 0.1,
    n_strata: int = 50,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Indices of the samples to keep, ranked by a difficulty score (higher = harder).

    ``keep="hard"`` keeps the highest scores, ``"easy"`` the lowest, ``"random"`` a uniform
    sample, and ``"ccs"`` applies coverage-centric coreset selection (Zheng et al. 2023): drop
    the ``beta`` share of hardest samples, split the rest into ``n_strata`` equal-width score
    strata, give the budget to the strata from the smallest up (each stratum at most an equal
    share of what is left), and sample uniformly inside each stratum.

    Exactly ``n_kept(n_samples, fraction)`` indices come back whatever ``keep`` and ``balance``
    are, so every rule is compared at equal size.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Difficulty of each sample, higher = harder.
    fraction : float
        Share of samples to keep, in (0, 1].
    keep : {"hard", "easy", "random", "ccs"}, default="hard"
    labels : array-like of shape (n_samples,), optional
        Class of each sample; used with ``balance``.
    balance : {"none", "proportional", "equal"}, default="proportional"
        With ``labels``: ``"proportional"`` keeps the same share of every class (largest-remainder
        rounding), ``"equal"`` the same count of every class (a class smaller than its share is
        kept whole and the rest is spread over the others); the rule ``keep`` then runs inside
        each class. ``"none"`` (or no labels) ranks all samples together.
    beta : float, default=0.1
        CCS only: share of hardest samples dropped first, in [0, 1). It is lowered to
        ``1 - fraction`` when dropping it would leave fewer samples than the budget.
    n_strata : int, default=50
        CCS only: number of equal-width score strata (50 in the reference code).
    seed : int or numpy Generator, default=0
        Randomness of ``"random"`` and ``"ccs"``; ties of ``"hard"``/``"easy"`` go to the lower index.

    Returns
    -------
    indices : ndarray of shape (n_kept,), dtype int64
        Sorted indices of the kept samples.

    Raises
    ------
    ValueError
        For non-finite scores, ``fraction`` outside (0, 1], ``labels`` of the wrong length, or an
        unknown ``keep`` / ``balance``.

    References
    ----------
    Zheng, Liu, Li, Prakash. Coverage-centric Coreset Selection for High Pruning Rates. ICLR 2023.

    Examples
    --------
    >>> select([0.1, 0.9, 0.5, 0.7], 0.5, keep="hard").tolist()
    [1, 3]
    >>> select([0.1, 0.9, 0.5, 0.7], 0.5, keep="easy").tolist()
    [0, 2]
    """
    scores = check_scores(scores)
    fraction = check_fraction(fraction)
    labels = check_labels(labels, scores.size)
    if keep not in KEEPS:
        raise ValueError(f"keep must be one of {KEEPS}, got {keep!r}")
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1) (share of hardest samples CCS drops), got {beta!r}")
    check_int(n_strata, "n_strata")
    return _select_impl(scores, n_kept(scores.size, fraction), keep=keep, labels=labels,
                        balance=balance, beta=float(beta), n_strata=int(n_strata),
                        rng=check_seed(seed))


def _select_impl(scores, k, *, keep, labels, balance, beta, n_strata, rng):
    """Selection on clean input: finite float64 scores, ``1 <= k <= n``, valid options."""
    if labels is None or balance == "none":
        return np.sort(_select_group(scores, k, keep=keep, beta=beta, n_strata=n_strata, rng=rng))
    _, group = np.unique(labels, return_inverse=True)
    sizes = np.bincount(group)
    if balance == "proportional":
        quotas = _largest_remainder(sizes * (k / scores.size), k)
    else:
        quotas = fill_from_smallest(sizes, k)
    members = np.argsort(group, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)))
    chosen = []
    for g, quota in enumerate(quotas):
        if quota == 0:
            continue
        idx = members[starts[g]:starts[g + 1]]
        local = _select_group(scores[idx], int(quota), keep=keep, beta=beta,
                              n_strata=n_strata, rng=rng)
        chosen.append(idx[local])
    return np.sort(np.concatenate(chosen))


def _select_group(scores, k, *, keep, beta, n_strata, rng):
    """Local indices of ``k`` samples of one group under rule ``keep``."""
    if keep == "hard":
        return np.argsort(-scores, kind="stable")[:k]
    if keep == "easy":
        return np.argsort(scores, kind="stable")[:k]
    if keep == "random":
        return rng.choice(scores.size, size=k, replace=False)
    return _ccs(scores, k, beta=beta, n_strata=n_strata, rng=rng)


def _ccs(scores, k, *, beta, n_strata, rng):
    """Coverage-centric selection of ``k`` local indices (Zheng et al. 2023)."""
    n = scores.size
    n_drop = int(beta * n)
    if n_drop > n - k:
        logger.info("ccs: beta=%.3f would drop %d of %d samples, leaving fewer than the budget "
                    "%d; dropping %d instead", beta, n_drop, n, k, n - k)
        n_drop = n - k
    pool = np.argsort(-scores, kind="stable")[n_drop:]
    pooled = scores[pool]
    lo, hi = pooled.min(), pooled.max()
    if hi > lo:
        stratum = np.minimum(((pooled - lo) / (hi - lo) * n_strata).astype(np.int64), n_strata - 1)
    else:
        stratum = np.zeros(pool.size, dtype=np.int64)
    counts = np.bincount(stratum, minlength=n_strata)
    budgets = fill_from_smallest(counts, k)
    # Shuffle, then group by stratum keeping the shuffled order: the first budget[j] members of
    # stratum j form a uniform sample of it.
    perm = rng.permutation(pool.size)
    by_stratum = perm[np.argsort(stratum[perm], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)))
    rank = np.arange(pool.size) - starts[stratum[by_stratum]]
    return pool[by_stratum[rank < budgets[stratum[by_stratum]]]]


def fill_from_smallest(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over bins of the given sizes, smallest bin first.

    Each bin, in increasing size, takes ``min(size, left // bins_left)``; the largest bins take
    what the small ones could not. This is CCS's budget rule, and the ``"equal"`` class balance.

    Parameters
    ----------
    sizes : ndarray of shape (n_bins,), dtype int
        Capacity of each bin.
    total : int
        Amount to split, ``<= sizes.sum()``.

    Returns
    -------
    budgets : ndarray of shape (n_bins,), dtype int64
        Summing to ``total``, with ``budgets <= sizes``.

    Examples
    --------
    >>> fill_from_smallest(np.array([1, 10, 10]), 9).tolist()
    [1, 4, 4]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    budgets = np.zeros(sizes.size, dtype=np.int64)
    left = int(total)
    for i, b in enumerate(order):
        take = min(int(sizes[b]), left // (sizes.size - i))
        budgets[b] = take
        left -= take
    if left:
        raise ValueError(f"cannot place {total} samples in bins holding {int(sizes.sum())}")
    return budgets


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer apportionment of ``total`` proportional to real ``shares`` (which sum to it)."""
    base = np.floor(shares).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        base[np.argsort(-(shares - base), kind="stable")[:short]] += 1
    return base
