"""Array-level fitting core shared by every law: robust loss, parameter transforms, multi-start L-BFGS-B.

Nothing here knows about a particular law: a law is a callable ``model(theta, Z) -> y_hat`` (optionally
with an analytic Jacobian) plus a grid of starting points. The estimators in :mod:`datamix.laws.base`
wrap these functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import OptimizeResult, minimize
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

LOSSES = ("linear", "huber", "soft_l1", "cauchy", "arctan")
# Cost assigned to a parameter vector whose prediction is not finite (or not positive under a log target).
_BAD_COST = 1e30


def robust_loss(r: np.ndarray, *, loss: str = "huber", f_scale: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise robust cost of residuals and its derivative, in units of ``f_scale**2``.

    Uses :func:`scipy.optimize.least_squares`'s definitions: with :math:`z = (r/f)^2`,

    .. math:: c(r) = \\tfrac12 \\rho(z), \\qquad
              \\rho_\\mathrm{huber}(z) = \\begin{cases} z & z \\le 1 \\\\ 2\\sqrt z - 1 & z > 1 \\end{cases}

    so ``f_scale**2 * c(r)`` is the classical Huber loss with ``delta = f_scale``.

    Parameters
    ----------
    r : ndarray of shape (n_samples,)
        Residuals.
    loss : {"linear", "huber", "soft_l1", "cauchy", "arctan"}, default="huber"
    f_scale : float, default=1e-3
        Soft margin between inlier and outlier residuals (the Huber ``delta``).

    Returns
    -------
    cost : ndarray of shape (n_samples,)
    dcost_dr : ndarray of shape (n_samples,)
    """
    z = (r / f_scale) ** 2
    if loss == "linear":
        rho, drho = z, np.ones_like(z)
    elif loss == "huber":
        inlier = z <= 1
        sz = np.sqrt(np.where(inlier, 1.0, z))
        rho = np.where(inlier, z, 2 * sz - 1)
        drho = np.where(inlier, 1.0, 1 / sz)
    elif loss == "soft_l1":
        rho, drho = 2 * (np.sqrt(1 + z) - 1), 1 / np.sqrt(1 + z)
    elif loss == "cauchy":
        rho, drho = np.log1p(z), 1 / (1 + z)
    elif loss == "arctan":
        rho, drho = np.arctan(z), 1 / (1 + z**2)
    else:
        raise ValueError(f"loss={loss!r} is not supported; expected one of {LOSSES}.")
    return 0.5 * rho, drho * r / f_scale**2


def to_internal(theta: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Map natural parameters to the unconstrained optimisation space (log of |theta| where signed)."""
    theta = np.asarray(theta, dtype=float)
    return np.where(transforms == "linear", theta, np.log(np.abs(np.where(transforms == "linear", 1.0, theta))))


def to_natural(u: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_internal`."""
    u = np.asarray(u, dtype=float)
    expu = np.exp(np.where(transforms == "linear", 0.0, np.clip(u, -700, 700)))
    return np.select([transforms == "log", transforms == "neglog"], [expu, -expu], default=u)


def internal_bounds(lower: np.ndarray, upper: np.ndarray, transforms: np.ndarray) -> list[tuple]:
    """L-BFGS-B bounds in the internal space; ``None`` where unbounded."""
    out = []
    for lo, hi, t in zip(lower, upper, transforms):
        if t == "neglog":
            lo, hi = -hi, -lo
        if t != "linear":
            lo = np.log(lo) if lo > 0 else -np.inf
            hi = np.log(hi) if 0 < hi < np.inf else (np.inf if hi == np.inf else -np.inf)
        out.append((None if lo == -np.inf else float(lo), None if hi == np.inf else float(hi)))
    return out


@dataclass(frozen=True)
class FitOutcome:
    """Result of :func:`fit_multistart`.

    Attributes
    ----------
    theta : ndarray of shape (n_params,)
        Best parameters (natural units, fixed ones included).
    result : scipy.optimize.OptimizeResult
        Raw result of the best start.
    converged : bool
        Whether at least one start reported success.
    n_starts : int
        Number of L-BFGS-B runs.
    """

    theta: np.ndarray
    result: OptimizeResult
    converged: bool
    n_starts: int


def make_objective(
    model: Callable,
    Z,
    y: np.ndarray,
    w: np.ndarray,
    *,
    transforms: np.ndarray,
    free: np.ndarray,
    theta_fixed: np.ndarray,
    loss: str,
    f_scale: float,
    log_target: bool,
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Build ``u_free -> (cost, gradient)`` for L-BFGS-B.

    ``model(theta, Z, jac)`` returns predictions of shape (n_samples,) and, when ``jac`` is true, the
    Jacobian (n_samples, n_params) in natural units or ``None`` (then central differences are used).
    Cost is the weighted mean robust loss of ``log y_hat - log y`` (or ``y_hat - y``) in units of
    ``f_scale**2``.
    """
    w = w / w.sum()
    target = np.log(y) if log_target else y

    def theta_of(u_free):
        theta = theta_fixed.copy()
        theta[free] = to_natural(u_free, transforms[free])
        return theta

    def cost_of(pred):
        if log_target:
            if not np.all(np.isfinite(pred)) or np.any(pred <= 0):
                return None, None
            r = np.log(pred) - target
        else:
            if not np.all(np.isfinite(pred)):
                return None, None
            r = pred - target
        c, dc = robust_loss(r, loss=loss, f_scale=f_scale)
        return float(w @ c), w * dc

    def evaluate(theta, jac):
        # Trial points may overflow; non-finite predictions are rejected by cost_of.
        with np.errstate(all="ignore"):
            return model(theta, Z, jac)

    def objective(u_free):
        theta = theta_of(u_free)
        pred, J = evaluate(theta, True)
        cost, g_r = cost_of(pred)
        if cost is None:
            return _BAD_COST, np.zeros_like(u_free)
        if J is not None:
            if not np.all(np.isfinite(J)):
                return _BAD_COST, np.zeros_like(u_free)
            # d theta / d u = theta for log-type parameters, 1 for linear ones.
            dtheta = np.where(transforms[free] == "linear", 1.0, theta[free])
            dr = J[:, free] / pred[:, None] if log_target else J[:, free]
            return cost, (g_r @ dr) * dtheta
        grad = np.empty_like(u_free)
        for j in range(u_free.size):
            h = 1e-6 * max(1.0, abs(u_free[j]))
            up, dn = u_free.copy(), u_free.copy()
            up[j] += h
            dn[j] -= h
            cu = cost_of(evaluate(theta_of(up), False)[0])[0]
            cd = cost_of(evaluate(theta_of(dn), False)[0])[0]
            grad[j] = 0.0 if cu is None or cd is None else (cu - cd) / (2 * h)
        return cost, grad

    objective.theta_of = theta_of
    return objective


def fit_multistart(
    objective: Callable,
    starts: np.ndarray,
    *,
    transforms: np.ndarray,
    free: np.ndarray,
    bounds: list[tuple],
    n_starts: int | None = None,
    max_iter: int = 1000,
    tol: float = 1e-12,
) -> FitOutcome:
    """Run L-BFGS-B from the best ``n_starts`` rows of ``starts`` and keep the lowest cost.

    Parameters
    ----------
    objective : callable
        From :func:`make_objective`.
    starts : ndarray of shape (n_grid, n_params)
        Candidate starting points in natural units (fixed parameters are ignored).
    transforms : ndarray of shape (n_params,)
        ``"log"``, ``"neglog"`` or ``"linear"`` per parameter.
    free : ndarray of bool, shape (n_params,)
    bounds : list of (lo, hi)
        Internal-space bounds of the free parameters (:func:`internal_bounds`).
    n_starts : int or None, default=None
        Pre-screen the grid by its cost and run L-BFGS-B from this many best points; ``None`` runs all.
    max_iter : int, default=1000
    tol : float, default=1e-12
        ``ftol`` of L-BFGS-B; ``gtol`` is ``tol * 1e3``.

    Returns
    -------
    FitOutcome
        ``theta`` is the best state even when no start converged.
    """
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    u0 = np.clip(to_internal(np.atleast_2d(starts)[:, free], transforms[free]), lo, hi)
    u0 = np.unique(u0, axis=0)
    if n_starts is not None and n_starts < len(u0):
        costs = np.array([objective(u)[0] for u in u0])
        u0 = u0[np.argsort(costs, kind="stable")[:n_starts]]
    best, converged = None, False
    # The problems are tiny: threaded BLAS only adds overhead (and contention on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for u in u0:
            res = minimize(
                objective, u, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": max_iter, "ftol": tol, "gtol": tol * 1e3},
            )
            converged |= bool(res.success)
            if best is None or res.fun < best.fun:
                best = res
    logger.debug("best of %d starts: cost=%.6g (%s)", len(u0), best.fun, best.message)
    return FitOutcome(objective.theta_of(best.x), best, converged, len(u0))
