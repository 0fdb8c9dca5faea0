"""Data-driven starting points: solve the linear coefficients of a law for fixed exponents."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import nnls


def relative_nnls(M: np.ndarray, y: np.ndarray, *, floor: float = 1e-8) -> np.ndarray:
    """Non-negative ``coef`` minimising ``sum_i (M_i . coef / y_i - 1)^2`` (a proxy for log-space fit).

    Parameters
    ----------
    M : ndarray of shape (n_samples, n_terms)
        Basis functions evaluated at the data.
    y : ndarray of shape (n_samples,)
        Positive target.
    floor : float, default=1e-8
        Zero coefficients are replaced by ``floor`` times the scale of ``y`` over that basis column,
        so that they stay valid starts for log-parameterised fits.

    Returns
    -------
    coef : ndarray of shape (n_terms,)
    """
    A = M / y[:, None]
    scale = np.maximum(np.abs(A).max(axis=0), 1e-300)
    coef, _ = nnls(A / scale, np.ones_like(y), maxiter=50 * M.shape[1])
    coef = coef / scale
    tiny = floor * np.median(y) / np.maximum(np.abs(M).mean(axis=0), 1e-300)
    return np.where(coef > 0, coef, tiny)


def grid(*axes) -> np.ndarray:
    """Cartesian product of 1-D axes as an array of shape (n_points, n_axes)."""
    return np.array(list(itertools.product(*axes)), dtype=float)
