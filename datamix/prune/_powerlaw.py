"""Power-law fit y = c + a n^(-b) for pruning experiments.

Stand-in until :class:`datamix.laws.PowerLaw` lands; callers use only :func:`fit_power_law`, so
swapping the implementation is a change to this module alone.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import curve_fit

__all__ = ["fit_power_law"]


def fit_power_law(n: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float]:
    """Fit :math:`y = c + a n^{-b}` by least squares on :math:`\\log y`.

    Parameters
    ----------
    n : array-like of shape (n_points,)
        Data sizes (> 0).
    y : array-like of shape (n_points,)
        Errors or losses (> 0) at those sizes.

    Returns
    -------
    params : dict
        ``{"a", "b", "c"}``, with ``a > 0``, ``0 < b <= 10``, ``0 <= c < min(y)``.

    Examples
    --------
    >>> n = np.array([10.0, 100.0, 1000.0, 10000.0])
    >>> p = fit_power_law(n, 0.05 + 2.0 * n ** -0.5)
    >>> round(p["a"], 3), round(p["b"], 3), round(p["c"], 3)
    (2.0, 0.5, 0.05)
    """
    n = np.asarray(n, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1 or n.size < 3:
        raise ValueError(f"n and y must be 1-D of one length >= 3, got {n.shape} and {y.shape}")
    if (n <= 0).any() or (y <= 0).any():
        raise ValueError("n and y must be positive to fit a power law on log y")
    slope, intercept = np.polyfit(np.log(n), np.log(y), 1)  # start from the pure power law
    p0 = (np.exp(intercept), float(np.clip(-slope, 1e-3, 9.0)), 0.0)

    def log_model(x, a, b, c):
        return np.log(c + a * x ** -b)

    upper_c = 0.999 * y.min()
    (a, b, c), _ = curve_fit(log_model, n, np.log(y), p0=p0,
                             bounds=([1e-12, 1e-4, 0.0], [np.inf, 10.0, upper_c]), maxfev=20000)
    return {"a": float(a), "b": float(b), "c": float(c)}
