"""Mixture ratios on the probability simplex: validation, projection, grids."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

__all__ = ["check_ratios", "project_simplex", "simplex_grid"]


def check_ratios(p: npt.ArrayLike, names: list[str], *, atol: float = 1e-6) -> np.ndarray:
    """Ratios as float64, shape (n_sources,) or (n_mixtures, n_sources); ValueError unless >= 0 and summing to 1.

    ``p`` may also be a mapping of source name to ratio (missing names are 0).
    """
    if isinstance(p, dict):
        unknown = sorted(set(p) - set(names))
        if unknown:
            raise ValueError(f"ratios name unknown source(s) {unknown}; sources are {names}")
        p = [p.get(n, 0.0) for n in names]
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"ratios must be numeric, got {p!r}") from None
    if arr.ndim not in (1, 2) or arr.shape[-1] != len(names):
        raise ValueError(f"ratios has shape {arr.shape}, expected ({len(names)},) or (n, {len(names)}): "
                         f"one ratio per source {names}")
    if not np.isfinite(arr).all() or (arr < -atol).any():
        raise ValueError(f"ratios must be finite and >= 0, got {arr.tolist()}")
    sums = arr.sum(axis=-1)
    if np.any(np.abs(sums - 1) > atol):
        raise ValueError(f"ratios must sum to 1 (within {atol}), got sum(s) {np.round(sums, 8).tolist()}; "
                         "normalise them (p / p.sum()) or project them with project_simplex")
    return np.clip(arr, 0.0, None)


def project_simplex(v: npt.ArrayLike) -> np.ndarray:
    """Euclidean projection of ``v`` (n,) onto the probability simplex (Duchi et al. 2008).

    Examples
    --------
    >>> project_simplex([0.5, 0.5, 0.5]).round(6).tolist()
    [0.333333, 0.333333, 0.333333]
    >>> project_simplex([2.0, 0.0]).tolist()
    [1.0, 0.0]
    """
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"project_simplex needs a finite 1-D vector, got {v!r}")
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.flatnonzero(u - css / np.arange(1, v.size + 1) > 0)[-1]
    return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


def simplex_grid(n_sources: int, steps: int) -> np.ndarray:
    """Every mixture with ratios in multiples of ``1/steps``, shape (C(steps + k - 1, k - 1), k).

    ``simplex_grid(3, 10)`` gives the 66 mixtures of three sources in steps of 0.1, in lexicographic
    order of the first ratios.
    """
    if n_sources < 1 or steps < 1:
        raise ValueError(f"need n_sources >= 1 and steps >= 1, got {n_sources}, {steps}")
    rows = [c + (steps - sum(c),) for c in itertools.product(range(steps + 1), repeat=n_sources - 1)
            if sum(c) <= steps]
    return np.array(rows, dtype=np.float64) / steps
