"""Ridge with an unpenalised intercept: leave-one-out residuals against explicit refits."""

import numpy as np
import pytest

from datamix.predict._regression import fit_ridge


def _refit_loo(Z, y, alpha):
    """Known answer: drop each point, refit with the same penalty (``alpha`` times the full n on
    the full data's standardised columns) and predict it."""
    n = len(y)
    std = Z.std(axis=0)
    Zs = (Z - Z.mean(axis=0)) / std
    out = []
    for i in range(n):
        keep = np.arange(n) != i
        Zo, yo = Zs[keep], y[keep]
        zm, ym = Zo.mean(axis=0), yo.mean()
        A = (Zo - zm).T @ (Zo - zm) + alpha * n * np.eye(Z.shape[1])
        w = np.linalg.pinv(A) @ ((Zo - zm).T @ (yo - ym))
        out.append(y[i] - (ym + (Zs[i] - zm) @ w))
    return np.array(out)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_leave_one_out_residuals_are_those_of_refits(alpha):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(30, 4))
    y = Z @ [1.0, -2.0, 0.5, 0.0] + rng.normal(0, 0.3, 30)
    fit = fit_ridge(Z, y, alpha=alpha)
    np.testing.assert_allclose(fit.loo_residuals, _refit_loo(Z, y, alpha), rtol=1e-8, atol=1e-10)


def test_an_interpolating_design_has_real_leave_one_out_errors_not_zero():
    """More columns than points: least squares passes through every point (leverage 1), where the
    hat-matrix shortcut gives 0/0; the residuals are the refits' and "auto" does not take the
    interpolating penalty for a perfect one."""
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(8, 12))
    y = Z[:, 0] + rng.normal(0, 0.5, 8)
    fit = fit_ridge(Z, y, alpha=0.0)
    np.testing.assert_allclose(fit.residuals, 0.0, atol=1e-9)  # it interpolates
    loo = _refit_loo(Z, y, 0.0)
    assert np.abs(loo).mean() > 0.3
    np.testing.assert_allclose(fit.loo_residuals, loo, rtol=1e-6, atol=1e-9)
    auto = fit_ridge(Z, y, alpha="auto")
    assert auto.alpha > 0 and np.mean(auto.loo_residuals ** 2) <= np.mean(loo ** 2)
