"""Gradient of an OT distance with respect to mixture weights, from the dual potentials."""

from __future__ import annotations

import numpy as np


def mixture_gradient(potentials, source_of_point, weights) -> np.ndarray:
    """Calibrated gradient of OT(mixture, target) with respect to the mixture weights.

    The mixture puts mass ``weights[i]`` on source i, spread over its points. Moving mass ε to
    source i from the other sources (in proportion to their weights) changes the OT cost by ε·g_i,
    with

    .. math::

        g_i = \\bar f_i - \\frac{\\sum_{j \\ne i} p_j \\bar f_j}{\\sum_{j \\ne i} p_j},

    where :math:`\\bar f_j` is the mean dual potential over source j's points: the mean potential
    inside source i minus the mean outside it. Potentials are defined up to a constant, which
    cancels. Where every other source has weight 0, the outside mean is the plain mean over the
    other sources.

    Parameters
    ----------
    potentials : array of shape (n_points,)
        Dual potential f of each mixture point (non-debiased problem; ``label_ot(...).potentials[0]``).
    source_of_point : array of int, shape (n_points,)
        Source index (0..k-1) of each point; kept aligned with ``potentials`` by the caller.
    weights : array of shape (n_sources,)
        Current mixture weights p.

    Returns
    -------
    ndarray of shape (n_sources,)
    """
    f = np.asarray(potentials.cpu() if hasattr(potentials, "cpu") else potentials, dtype=np.float64)
    src = np.asarray(source_of_point)
    p = np.asarray(weights, dtype=np.float64)
    k = len(p)
    if f.ndim != 1 or src.shape != f.shape:
        raise ValueError(f"potentials {f.shape} and source_of_point {src.shape} must be 1-D of one length")
    if src.size and (src.min() < 0 or src.max() >= k or not np.issubdtype(src.dtype, np.integer)):
        raise ValueError(f"source_of_point must hold integers in [0, {k}) for {k} weights")
    counts = np.bincount(src, minlength=k)
    if (counts == 0).any():
        raise ValueError(f"sources {np.flatnonzero(counts == 0).tolist()} have no points")
    means = np.bincount(src, weights=f, minlength=k) / counts
    grad = np.empty(k)
    for i in range(k):
        others = np.arange(k) != i
        w = p[others] if p[others].sum() > 0 else np.ones(k - 1)
        grad[i] = means[i] - np.dot(w, means[others]) / w.sum()
    return grad
