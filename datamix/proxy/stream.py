"""Compute-bound data streams: what a proxy sees when it trains on a budget, as pretraining does.

A run spends a budget of ``seen`` units (samples, or token sequences) on a pool of unique units,
repeating it as needed. Every group of the pool (a source, a quality pool) streams its own passes:
pass k is a fresh permutation of the group's units, and the last pass is cut where the group's
share of the budget ends. The groups of a mixture are interleaved evenly over the whole run, as a
pretraining loader mixes its sources, so a source repeated four times is seen four times spread
over the run, not at its start. Epochs of a group = its seen units / its unique units.

One learning-rate schedule spans the whole budget (:func:`lr_schedule`): a linear warm-up, then a
cosine decay that ends at the last step, so a run stopped at a smaller budget is a different run,
never a prefix of a longer one (Hoffmann et al. 2022 on matching the schedule to the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datamix.index._checks import check_seed

__all__ = ["Budget", "mixture_stream", "lr_schedule", "repeated_scale"]


@dataclass(frozen=True)
class Budget:
    """What a compute-bound run saw.

    Attributes
    ----------
    seen : int
        Units streamed (samples, or tokens for a language model).
    unique : int
        Distinct units among them.
    """

    seen: int
    unique: int

    @property
    def epochs(self) -> float:
        """Passes over the unique data: ``seen / unique`` (NaN when nothing was seen)."""
        return self.seen / self.unique if self.unique else float("nan")


def mixture_stream(sizes: npt.ArrayLike, seen: npt.ArrayLike, *, seed=0) -> np.ndarray:
    """Order in which a compute-bound run visits the units of a pool made of groups.

    Parameters
    ----------
    sizes : array-like of int, shape (n_groups,)
        Unique units of every group; the units of group g are numbered
        ``offset[g] .. offset[g] + sizes[g] - 1`` with ``offset = cumsum([0, *sizes[:-1]])``.
    seen : array-like of int, shape (n_groups,)
        Units to stream from every group (its share of the budget); may exceed ``sizes[g]``
        (repetition) or fall short of it (a partial first pass: a random subset).
    seed : int or numpy Generator

    Returns
    -------
    ndarray of int64, shape (sum(seen),)
        Unit indices in visiting order.

    Examples
    --------
    >>> order = mixture_stream([3], [7], seed=0)
    >>> sorted(order[:3].tolist()), sorted(order[3:6].tolist()), len(order)
    ([0, 1, 2], [0, 1, 2], 7)
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    seen = np.asarray(seen, dtype=np.int64).reshape(-1)
    if sizes.shape != seen.shape:
        raise ValueError(f"sizes {sizes.shape} and seen {seen.shape} need one entry per group")
    if (sizes < 0).any() or (seen < 0).any():
        raise ValueError(f"sizes and seen must be >= 0, got sizes={sizes.tolist()} seen={seen.tolist()}")
    empty = (sizes == 0) & (seen > 0)
    if empty.any():
        raise ValueError(f"group(s) {np.flatnonzero(empty).tolist()} have no units but a budget to stream")
    rng = check_seed(seed)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    parts, keys = [], []
    for off, n, c in zip(offsets, sizes, seen):
        if c == 0:
            continue
        passes = -(-c // n)
        order = np.concatenate([rng.permutation(n) for _ in range(passes)])[:c] + off
        parts.append(order)
        keys.append((np.arange(c) + rng.random(c)) / c)  # spread evenly over the run
    if not parts:
        return np.zeros(0, dtype=np.int64)
    order = np.concatenate(parts)
    return order[np.argsort(np.concatenate(keys), kind="stable")]


def lr_schedule(total_steps: int, *, warmup: float = 0.05, final: float = 0.1):
    """Learning-rate multiplier per step: linear warm-up, then cosine decay ending at the budget.

    Parameters
    ----------
    total_steps : int
        Optimiser steps of the whole run.
    warmup : float, default=0.05
        Share of the steps spent warming up linearly from ``1 / warmup_steps`` to 1.
    final : float, default=0.1
        Multiplier at the last step.

    Returns
    -------
    callable
        ``f(step) -> float`` for ``torch.optim.lr_scheduler.LambdaLR`` (``step`` from 0).

    Examples
    --------
    >>> f = lr_schedule(100, warmup=0.1, final=0.1)
    >>> round(f(9), 3), round(f(99), 3)
    (1.0, 0.1)
    """
    if int(total_steps) != total_steps or total_steps < 1:
        raise ValueError(f"total_steps={total_steps!r} must be a positive integer")
    if not 0 <= warmup < 1 or not 0 <= final <= 1:
        raise ValueError(f"need 0 <= warmup < 1 and 0 <= final <= 1, got warmup={warmup!r}, final={final!r}")
    n_warm = int(round(warmup * total_steps))
    n_decay = max(1, total_steps - n_warm - 1)

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        t = min(1.0, (step - n_warm) / n_decay)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def repeated_scale(X: np.ndarray, repeats: npt.ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and standard deviation, shapes (n_features,), of the rows of ``X`` each counted
    ``repeats`` times (default once): those of the repeated rows, without repeating them. A
    constant feature gets a standard deviation of 1."""
    mean = np.average(X, axis=0, weights=repeats)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=repeats))
    std[std == 0] = 1.0
    return mean, std
