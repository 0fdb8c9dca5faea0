"""Ridge regression with an unpenalised intercept and leave-one-out choice of the penalty.

Pure functions on arrays; the predictors call them once per revealed size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

#: Penalties tried by ``alpha="auto"``, relative to the mean squared (standardised) feature.
ALPHAS = np.concatenate([[0.0], np.logspace(-6, 2, 17)])


@dataclass(frozen=True)
class RidgeFit:
    """A fitted ridge model ``y ≈ intercept + Z @ coef``.

    Attributes
    ----------
    coef : ndarray of shape (n_features,)
    intercept : float
    alpha : float
        The penalty used (on standardised columns).
    loo_residuals : ndarray of shape (n_samples,)
        Leave-one-out residuals ``y_i - ŷ_{-i}`` (exact for ridge, from the hat matrix).
    residuals : ndarray of shape (n_samples,)
        In-sample residuals.
    dof : float
        Effective degrees of freedom, trace of the hat matrix (intercept included).
    """

    coef: np.ndarray
    intercept: float
    alpha: float
    loo_residuals: np.ndarray
    residuals: np.ndarray
    dof: float

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.intercept + Z @ self.coef


def _solve(Zs: np.ndarray, y: np.ndarray, alpha: float, n: int):
    """Coefficients (standardised columns) and hat matrix of centred ridge."""
    d = Zs.shape[1]
    A = Zs.T @ Zs + alpha * n * np.eye(d)
    A_inv = np.linalg.pinv(A, hermitian=True)
    return A_inv @ (Zs.T @ y), Zs @ A_inv @ Zs.T


def _loo_residuals(Zs, yc, fitted, h, alpha: float, n: int) -> np.ndarray:
    """Leave-one-out residuals ``y_i - ŷ_{-i}``: ``(y_i - ŷ_i) / (1 - h_ii)`` (exact for ridge with
    its penalty held), and for a point the fit passes through with leverage ~1 (an interpolating
    design: more columns than points), where that is 0/0, a refit without it."""
    loo = (yc - fitted) / np.maximum(1.0 - h, 1e-6)
    for i in np.flatnonzero(1.0 - h < 1e-6):
        keep = np.arange(len(yc)) != i
        Zo, yo = Zs[keep], yc[keep]
        zm, ym = Zo.mean(axis=0), yo.mean()
        w, _ = _solve(Zo - zm, yo - ym, alpha, n)
        loo[i] = yc[i] - (ym + (Zs[i] - zm) @ w)
    return loo


def fit_ridge(Z: np.ndarray, y: np.ndarray, *, alpha: float | str = "auto", alphas: np.ndarray = ALPHAS) -> RidgeFit:
    """Ridge fit of ``y`` on ``Z`` with an unpenalised intercept.

    Columns are centred and scaled to unit standard deviation (constant columns are dropped from
    the solve); ``alpha`` multiplies ``n_samples`` times the identity. ``alpha="auto"`` picks the
    penalty of ``alphas`` with the smallest leave-one-out mean squared error. With ``alpha=0`` a
    rank-deficient design gets the minimum-norm least-squares solution.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    alpha : float or "auto", default="auto"
    alphas : ndarray
        Candidates of ``"auto"``.

    Returns
    -------
    RidgeFit
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = Z.shape
    mean = Z.mean(axis=0)
    std = Z.std(axis=0)
    live = std > 1e-12 * max(1.0, float(np.abs(Z).max(initial=0.0)))
    Zs = (Z[:, live] - mean[live]) / std[live]
    y_mean = y.mean()
    yc = y - y_mean
    candidates = alphas if alpha == "auto" else [float(alpha)]
    best = None
    for a in candidates:
        with threadpool_limits(1):  # matrices of a few columns: BLAS threads only spin
            w, H = _solve(Zs, yc, a, n)
        h = np.diag(H) + 1.0 / n
        fitted = Zs @ w
        loo = _loo_residuals(Zs, yc, fitted, h, a, n)
        err = float(np.mean(loo**2))
        if best is None or err < best[0] - 1e-15:
            best = (err, a, w, loo, yc - fitted, float(h.sum()))
    _, a, w, loo, res, dof = best
    coef = np.zeros(d)
    coef[live] = w / std[live]
    intercept = float(y_mean - mean @ coef)
    return RidgeFit(coef, intercept, float(a), loo, res, dof)
