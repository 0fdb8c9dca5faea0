"""Exact Euclidean projections used by the mixture optimizer (NumPy, float64).

The feasible set of (ratios ``p``, keep-fractions ``q``) is, per source, a polygon

.. math:: P_i = \\{(p_i, q_i):\\ l_i \\le p_i \\le h_i,\\
          \\underline q_i \\le q_i \\le \\overline q_i,\\ p_i \\le a_i q_i\\}

(:math:`a_i = E U_i / T` from the epoch limit), joined by :math:`\\sum_i p_i = 1` and, with a money
budget, :math:`\\sum_i w_i q_i \\le B`. The projection of :math:`(x, z)` is the per-source projection
of :math:`(x_i - \\mu, z_i - \\lambda w_i)` onto :math:`P_i`, with multipliers :math:`\\mu` (free) and
:math:`\\lambda \\ge 0`. Per source it is closed-form; :math:`\\sum_i p_i(\\mu)` is piecewise linear and
non-increasing, so :math:`\\mu` is found exactly from its breakpoints; :math:`\\lambda` by bisection,
keeping the end of the bracket that satisfies the budget.
"""

from __future__ import annotations

import numpy as np

__all__ = ["project_polygons", "project_mixture", "project_capped_simplex"]


def project_polygons(x, z, lo, hi, qlo, qhi, a):
    """Projection of points ``(x_i, z_i)`` onto the polygons :math:`P_i` (arrays broadcast).

    ``a = inf`` means no coupling. Returns ``(p, q)``.
    """
    p = np.clip(x, lo, hi)
    q = np.clip(z, qlo, qhi)
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = p > a * q
        if np.any(bad):
            # the epoch bound is active: project onto the segment p = a q inside the box
            t = (a * x + z) / (a * a + 1.0)
            t = np.clip(t, np.maximum(qlo, lo / a), np.minimum(qhi, hi / a))
            p = np.where(bad, a * t, p)
            q = np.where(bad, t, q)
    return p, q


def _sum_p(mu, x, z, lo, hi, qlo, qhi, a):
    """sum_i p_i(mu) for every mu in the 1-D array ``mu``."""
    p, _ = project_polygons(x[None, :] - mu[:, None], z[None, :], lo, hi, qlo, qhi, a)
    return p.sum(axis=1)


def _breakpoints(x, z, lo, hi, qlo, qhi, a):
    """Every mu at which some p_i(mu) changes slope."""
    qz = np.clip(z, qlo, qhi)
    pts = [x - lo, x - hi]
    fin = np.isfinite(a)
    if np.any(fin):
        af, xf, zf = a[fin], x[fin], z[fin]
        pts.append(xf - af * qz[fin])
        for t in (np.maximum(qlo[fin], lo[fin] / af), np.minimum(qhi[fin], hi[fin] / af)):
            pts.append(xf - ((af * af + 1.0) * t - zf) / af)
    bp = np.concatenate(pts)
    return np.unique(bp[np.isfinite(bp)])


def _solve_sum(x, z, lo, hi, qlo, qhi, a):
    """(p, q) with sum(p) = 1: mu from the breakpoints, then interpolation on the bracketing piece."""
    bp = _breakpoints(x, z, lo, hi, qlo, qhi, a)
    bp = np.concatenate([[bp[0] - 1.0], bp, [bp[-1] + 1.0]])
    vals = _sum_p(bp, x, z, lo, hi, qlo, qhi, a)            # non-increasing in mu
    j = int(np.searchsorted(-vals, -1.0, side="left"))      # first mu with sum <= 1
    j = min(max(j, 1), bp.size - 1)
    m0, m1, f0, f1 = bp[j - 1], bp[j], vals[j - 1], vals[j]
    p0, q0 = project_polygons(x - m0, z, lo, hi, qlo, qhi, a)
    p1, q1 = project_polygons(x - m1, z, lo, hi, qlo, qhi, a)
    if f0 == f1:
        return p1, q1
    # p(mu) is affine on [m0, m1]; the convex combination is the exact point (and stays feasible)
    theta = min(max((f0 - 1.0) / (f0 - f1), 0.0), 1.0)
    p = np.clip((1 - theta) * p0 + theta * p1, lo, hi)
    return p, np.clip((1 - theta) * q0 + theta * q1, qlo, qhi)


def project_mixture(x, z, lo, hi, qlo, qhi, a, w=None, budget=np.inf, *, n_bisect: int = 60):
    """Projection of ``(x, z)`` onto {(p, q) in the polygons, sum(p) = 1, w @ q <= budget}.

    Parameters
    ----------
    x, z : ndarray of shape (n_sources,)
        Ratios and keep-fractions to project.
    lo, hi, qlo, qhi, a : ndarray of shape (n_sources,)
        Bounds and epoch slopes of the polygons (a feasible set is assumed).
    w : ndarray of shape (n_sources,), optional
        Money per unit of keep-fraction (price x available samples), >= 0.
    budget : float

    Returns
    -------
    p, q : ndarray of shape (n_sources,)
    """
    p, q = _solve_sum(x, z, lo, hi, qlo, qhi, a)
    if w is None or not np.isfinite(budget) or w @ q <= budget:
        return p, q
    scale = max(float(np.abs(w).max()), 1e-300)
    lam_lo, lam_hi = 0.0, 1.0 / scale
    g_lo = float(w @ q) - budget                              # > 0: over budget at lambda = 0
    p_hi, q_hi = _solve_sum(x, z - lam_hi * w, lo, hi, qlo, qhi, a)
    g_hi = float(w @ q_hi) - budget
    while g_hi > 0:
        if lam_hi > 1e200:
            raise ValueError(f"no point of the feasible set spends at most budget={budget!r}")
        lam_lo, g_lo, lam_hi = lam_hi, g_hi, lam_hi * 4.0
        p_hi, q_hi = _solve_sum(x, z - lam_hi * w, lo, hi, qlo, qhi, a)
        g_hi = float(w @ q_hi) - budget
    # money(lambda) is piecewise linear and non-increasing: regula falsi (Illinois) converges in a few
    # steps; the end of the bracket within the budget is kept
    side, f_lo, f_hi = 0, g_lo, g_hi        # secant values (Illinois halves them); g_hi stays the true slack
    for _ in range(n_bisect):
        if g_hi >= -1e-12 * max(1.0, abs(budget)) or lam_hi - lam_lo <= 1e-15 * lam_hi:
            break
        mid = lam_hi - f_hi * (lam_hi - lam_lo) / (f_hi - f_lo)
        if not lam_lo < mid < lam_hi:
            mid = 0.5 * (lam_lo + lam_hi)
        pm, qm = _solve_sum(x, z - mid * w, lo, hi, qlo, qhi, a)
        gm = float(w @ qm) - budget
        if gm <= 0:
            lam_hi, g_hi, f_hi, p_hi, q_hi = mid, gm, gm, pm, qm
            if side == -1:
                f_lo /= 2
            side = -1
        else:
            lam_lo, f_lo = mid, gm
            if side == 1:
                f_hi /= 2
            side = 1
    return p_hi, q_hi


def project_capped_simplex(x, lo, hi):
    """Projection onto :math:`\\{y : \\sum_i y_i = 1,\\ l \\le y \\le h\\}` (needs sum(lo) <= 1 <= sum(hi)).

    Examples
    --------
    >>> project_capped_simplex(np.array([0.5, 0.5, 0.5]), np.zeros(3), np.ones(3)).round(6).tolist()
    [0.333333, 0.333333, 0.333333]
    >>> project_capped_simplex(np.array([2.0, 0.0]), np.zeros(2), np.array([0.7, 1.0])).round(12).tolist()
    [0.7, 0.3]
    """
    x = np.asarray(x, dtype=np.float64)
    one = np.ones_like(x)
    return _solve_sum(x, one, np.asarray(lo, float), np.asarray(hi, float), one, one, np.full_like(x, np.inf))[0]
