"""Power-law, Chinchilla and data-constrained scaling laws (array functions and estimators)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ._starts import grid, relative_nnls
from .base import Law

_POS = (0.0, np.inf)
CHINCHILLA_KEYS = ("E", "A", "B", "alpha", "beta")


# ---------------------------------------------------------------------------- array functions
def power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """:math:`y = c + a\\,n^{-b}`; ``n`` of any shape."""
    return c + a * np.power(n, -b)


def chinchilla_loss(N, D, E, A, B, alpha, beta) -> np.ndarray:
    """Chinchilla loss :math:`L = E + A/N^\\alpha + B/D^\\beta` (Hoffmann et al. 2022).

    Parameters
    ----------
    N : array-like
        Model parameters.
    D : array-like
        Training tokens (same shape as ``N``).
    E, A, B, alpha, beta : float
    """
    return E + A * np.power(N, -alpha) + B * np.power(D, -beta)


def _saturating(U, R, r_star):
    """``U (1 + r (1 - exp(-R/r)))`` (repetitions ``R`` worth at most ``r`` times ``U``) and its ``r``-derivative."""
    x = R / r_star
    gained = -np.expm1(-x)
    return U * (1 + r_star * gained), U * (gained - x * np.exp(-x))


def effective_data(D, U, R_D_star) -> np.ndarray:
    """Effective tokens :math:`D' = U_D + U_D R_D^* (1 - e^{-R_D/R_D^*})` with :math:`R_D = D/U_D - 1`.

    ``U_D = min(U, D)`` is the unique data actually seen (Muennighoff et al. 2023, eq. 5).
    """
    U_D = np.minimum(U, D)
    return _saturating(U_D, D / U_D - 1, R_D_star)[0]


def compute_optimal_params(U, A, B, alpha, beta) -> np.ndarray:
    """Compute-optimal model size for ``U`` training tokens under Chinchilla parameters.

    :math:`N_{opt}(U) = G (G U)^{\\beta/\\alpha}`, :math:`G = (\\alpha A / \\beta B)^{1/(\\alpha+\\beta)}`,
    as in the datablations parametric fit (where it defines the unique parameters :math:`U_N`).
    """
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return G * np.power(G * U, beta / alpha)


def effective_params(N, U, R_N_star, A, B, alpha, beta) -> np.ndarray:
    """Effective parameters :math:`N' = U_N + U_N R_N^* (1 - e^{-R_N/R_N^*})`.

    :math:`U_N = \\min(N, N_{opt}(U))` and :math:`R_N = N/U_N - 1` (parameters in excess of the
    compute-optimal size for the unique data decay like repeated tokens).
    """
    U_N = np.minimum(N, compute_optimal_params(U, A, B, alpha, beta))
    return _saturating(U_N, N / U_N - 1, R_N_star)[0]


def data_constrained_loss(N, D, U, E, A, B, alpha, beta, R_D_star, R_N_star) -> np.ndarray:
    """Data-constrained loss :math:`E + A/N'^\\alpha + B/D'^\\beta` (Muennighoff et al. 2023).

    Parameters
    ----------
    N, D, U : array-like
        Parameters, tokens seen and unique tokens available (same shape).
    E, A, B, alpha, beta, R_D_star, R_N_star : float
    """
    U_D = np.minimum(U, D)
    return chinchilla_loss(
        effective_params(N, U_D, R_N_star, A, B, alpha, beta), effective_data(D, U, R_D_star),
        E, A, B, alpha, beta,
    )


def _data_constrained_with_jacobian(N, D, U, theta):
    """:func:`data_constrained_loss` and its Jacobian (n_samples, 7) in natural parameters."""
    E, A, B, alpha, beta, r_d, r_n = theta
    U_D = np.minimum(U, D)
    Dp, dDp_rd = _saturating(U_D, D / U_D - 1, r_d)
    log_G = (np.log(alpha * A) - np.log(beta * B)) / (alpha + beta)
    log_Nopt = log_G * (1 + beta / alpha) + beta / alpha * np.log(U_D)
    N_opt = np.exp(log_Nopt)
    excess = N > N_opt
    U_N = np.where(excess, N_opt, N)
    Np, dNp_rn = _saturating(U_N, N / U_N - 1, r_n)
    x = (N / U_N - 1) / r_n
    # d N' / d log N_opt where N' depends on N_opt (else 0), then chain to A, B, alpha, beta.
    dNp_dlog = np.where(excess, N_opt * (1 + r_n * -np.expm1(-x)) - N * np.exp(-x), 0.0)
    dlog = {
        "A": 1 / (alpha * A),
        "B": -1 / (alpha * B),
        "alpha": (1 - beta * (log_G + np.log(U_D))) / alpha**2 - log_G / alpha,
        "beta": (np.log(U_D) - 1 / beta) / alpha,
    }
    Na, Db = np.power(Np, -alpha), np.power(Dp, -beta)
    pred = E + A * Na + B * Db
    dL_dNp = -alpha * A * Na / Np
    J = np.column_stack([
        np.ones_like(pred),
        Na + dL_dNp * dNp_dlog * dlog["A"],
        Db + dL_dNp * dNp_dlog * dlog["B"],
        -A * np.log(Np) * Na + dL_dNp * dNp_dlog * dlog["alpha"],
        -B * np.log(Dp) * Db + dL_dNp * dNp_dlog * dlog["beta"],
        -beta * B * Db / Dp * dDp_rd,
        dL_dNp * dNp_rn,
    ])
    return pred, J


_CHINCHILLA_SPEC = (("E", "log", _POS), ("A", "log", _POS), ("B", "log", _POS),
                    ("alpha", "log", (0.0, 5.0)), ("beta", "log", (0.0, 5.0)))


def _chinchilla_with_jacobian(N, D, theta, jac):
    """:func:`chinchilla_loss` and, if ``jac``, its Jacobian (n_samples, 5)."""
    E, A, B, alpha, beta = theta
    Na, Db = np.power(N, -alpha), np.power(D, -beta)
    pred = E + A * Na + B * Db
    if not jac:
        return pred, None
    return pred, np.column_stack([np.ones_like(pred), Na, Db, -A * np.log(N) * Na, -B * np.log(D) * Db])


def _chinchilla_starts(N, D, y, exponents=(0.1, 0.2, 0.3, 0.4, 0.55, 0.75)):
    """``E, A, B`` by relative non-negative least squares for each ``(alpha, beta)`` of a grid."""
    rows = []
    for alpha, beta in grid(exponents, exponents):
        E, A, B = relative_nnls(np.column_stack([np.ones_like(N), N**-alpha, D**-beta]), y)
        rows.append((E, A, B, alpha, beta))
    return np.array(rows)


# ---------------------------------------------------------------------------- estimators
class PowerLaw(Law):
    """Saturating power law :math:`y = c + a\\,n^{-b}`.

    X has one column ``n`` (data size, steps, parameters...). Parameters ``a, b, c > 0``, fitted in
    log space; starts solve ``a, c`` by non-negative least squares on a grid of ``b``. See
    :class:`~datamix.laws.base.Law` for the fit options and attributes.

    Examples
    --------
    >>> import numpy as np
    >>> n = np.geomspace(1e3, 1e6, 12)
    >>> law = PowerLaw().fit(n, 0.5 + 30.0 * n ** -0.4)
    >>> round(law.params_["b"], 3)
    0.4
    """

    columns = ("n",)
    scale_names = ("n",)

    def _spec(self):
        return [("a", "log", _POS), ("b", "log", (0.0, 10.0)), ("c", "log", _POS)]

    def _scales(self, Z):
        return Z

    def _model(self, theta, Z, jac):
        a, b, c = theta
        n = Z[:, 0]
        nb = np.power(n, -b)
        pred = c + a * nb
        J = np.column_stack([nb, -a * np.log(n) * nb, np.ones_like(n)]) if jac else None
        return pred, J

    def _starts(self, Z, y):
        n = Z[:, 0]
        rows = []
        for b in np.geomspace(0.02, 3.0, 16):
            a, c = relative_nnls(np.column_stack([n**-b, np.ones_like(n)]), y)
            rows.append((a, b, c))
        return np.array(rows)


class Chinchilla(Law):
    """Chinchilla law :math:`L = E + A/N^\\alpha + B/D^\\beta`.

    X columns ``N`` (parameters) and ``D`` (tokens). All five parameters are positive and fitted in
    log space (the LSE form of Besiroglu et al. 2024 with Huber on log loss). Starts: ``E, A, B`` by
    non-negative least squares for each ``(alpha, beta)`` of a grid. See :class:`~datamix.laws.base.Law`.

    References
    ----------
    Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models".
    Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt".
    """

    columns = ("N", "D")
    scale_names = ("parameters N", "tokens D")

    def _spec(self):
        return list(_CHINCHILLA_SPEC)

    def _scales(self, Z):
        return Z

    def _model(self, theta, Z, jac):
        return _chinchilla_with_jacobian(Z[:, 0], Z[:, 1], theta, jac)

    def _starts(self, Z, y):
        return _chinchilla_starts(Z[:, 0], Z[:, 1], y)


class _FixedBase(Law):
    """Law whose Chinchilla part can be given (``base=``) and held fixed during the fit."""

    def __init__(
        self, *, base=None, loss="huber", f_scale=1e-3, log_target=True, bounds=None, n_starts=None,
        max_iter=1000, tol=1e-12, n_bootstrap=100, seed=0,
    ):
        super().__init__(loss=loss, f_scale=f_scale, log_target=log_target, bounds=bounds, n_starts=n_starts,
                         max_iter=max_iter, tol=tol, n_bootstrap=n_bootstrap, seed=seed)
        self.base = base

    def _validate_hyper(self):
        if self.base is None:
            return
        if not isinstance(self.base, Mapping) or set(self.base) != set(CHINCHILLA_KEYS):
            raise ValueError(f"base must be a dict with exactly the keys {list(CHINCHILLA_KEYS)}; got {self.base!r}.")
        for key in CHINCHILLA_KEYS:
            value = self.base[key]
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"base[{key!r}] must be positive and finite; got {value!r}.")

    def _fixed(self):
        return {} if self.base is None else {k: float(self.base[k]) for k in CHINCHILLA_KEYS}

    scale_names = ("parameters N", "tokens D", "epochs D/U")

    def _scales(self, Z):  # columns N, D, U: parameters, tokens and epochs D / U
        return np.column_stack([Z[:, 0], Z[:, 1], Z[:, 1] / Z[:, 2]])

    _epochs_scale = 2

    def _repetition_extremes(self, Z):  # D tokens all unique; or the first min(D, U) alone
        N, D, U = Z.T
        return np.column_stack([N, D, np.maximum(U, D)]), np.column_stack([N, np.minimum(D, U), U])


class DataConstrained(_FixedBase):
    """Data-constrained law of Muennighoff et al. (2023): Chinchilla on effective data and parameters.

    .. math::
        L = E + \\frac{A}{N'^\\alpha} + \\frac{B}{D'^\\beta},\\quad
        D' = U_D + U_D R_D^*(1 - e^{-R_D/R_D^*}),\\quad N' = U_N + U_N R_N^*(1 - e^{-R_N/R_N^*})

    with :math:`U_D = \\min(U, D)`, :math:`R_D = D/U_D - 1`, :math:`U_N = \\min(N, N_{opt}(U_D))`,
    :math:`R_N = N/U_N - 1` (see :func:`effective_params`).

    Parameters
    ----------
    base : dict, default=None
        Chinchilla parameters ``E, A, B, alpha, beta``. When given they are held fixed and only
        ``R_D_star`` and ``R_N_star`` are fitted (the published two-stage procedure); otherwise all
        seven parameters are fitted.
    **kwargs
        Fit options of :class:`~datamix.laws.base.Law`.

    Notes
    -----
    X columns ``N`` (parameters), ``D`` (tokens seen), ``U`` (unique tokens available). ``R_D_star``
    and ``R_N_star`` are bounded to ``[0.01, 20]`` by default, the published search range: on the
    published runs the objective is flat along a valley of (R_D*, R_N*) and only 0.1% lower far
    outside it (R_D* ~ 95, R_N* ~ 1.7); pass ``bounds=`` to widen.

    References
    ----------
    Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"; the two-stage fit follows
    huggingface/datablations ``utils/parametric_fit.ipynb``.
    """

    columns = ("N", "D", "U")
    _r_grid = (1.0, 2.5, 5.0, 10.0, 20.0)
    # The published search range (starts over [0, 20]^2): on the published 182 runs the Huber
    # objective is 0.13% lower at R_D* ~ 95, R_N* ~ 1.7 than at the published (15.4, 5.3), which is
    # the best point inside this box.
    _r_bounds = (1e-2, 20.0)

    def _spec(self):
        return list(_CHINCHILLA_SPEC) + [("R_D_star", "log", self._r_bounds), ("R_N_star", "log", self._r_bounds)]

    def _model(self, theta, Z, jac):
        if not jac:
            return data_constrained_loss(Z[:, 0], Z[:, 1], Z[:, 2], *theta), None
        return _data_constrained_with_jacobian(Z[:, 0], Z[:, 1], Z[:, 2], theta)

    def _starts(self, Z, y):
        r_grid = grid(self._r_grid, self._r_grid)
        if self.base is not None:
            base = [self.base[k] for k in CHINCHILLA_KEYS]
            return np.array([base + list(r) for r in r_grid])
        N, D, U = Z.T
        rows = []
        for alpha, beta in grid((0.25, 0.45), (0.25, 0.45)):
            for r_d, r_n in grid((3.0, 15.0), (3.0, 15.0)):
                Dp = effective_data(D, U, r_d)
                E, A, B = relative_nnls(np.column_stack([np.ones_like(N), N**-alpha, Dp**-beta]), y)
                rows.append((E, A, B, alpha, beta, r_d, r_n))
        return np.array(rows)


class RepetitionPenalty(_FixedBase):
    """Repetition-aware law: Chinchilla on all tokens seen plus a cost of repeating them.

    .. math:: L = E + \\frac{A}{N^\\alpha} + \\frac{B}{D^\\beta} + K R_D^{\\gamma},
              \\qquad R_D = \\max(D/U - 1, 0)

    The data-constrained law lets repeated tokens lose value but never hurt, so it plateaus where
    measured losses rise (past ~14 epochs, Muennighoff et al. 2023). Here every token counts as data
    and each repetition costs ``K R_D^gamma`` (convex: ``gamma >= 1`` by default), so the loss rises
    once that cost outgrows the data term's gains. X columns ``N``, ``D``, ``U`` as in
    :class:`DataConstrained`; parameters the Chinchilla ones plus ``K`` (loss units) and ``gamma``,
    all positive and fitted in log space.

    Parameters
    ----------
    base : dict, default=None
        Fixed Chinchilla parameters; then only ``K`` and ``gamma`` are fitted.
    **kwargs
        Fit options of :class:`~datamix.laws.base.Law`.

    Notes
    -----
    The penalty depends on repetitions only, not on model or data size; in the datablations runs the
    tokens per parameter at a given epoch count are the same across model sizes, so the data cannot
    tell these apart.
    """

    columns = ("N", "D", "U")

    def _spec(self):
        return list(_CHINCHILLA_SPEC) + [("K", "log", (0.0, np.inf)), ("gamma", "log", (1.0, 5.0))]

    def _model(self, theta, Z, jac):
        pred, J = _chinchilla_with_jacobian(Z[:, 0], Z[:, 1], theta[:5], jac)
        K, gamma = theta[5:]
        R = np.maximum(Z[:, 1] / np.minimum(Z[:, 2], Z[:, 1]) - 1, 0.0)
        Rg = np.power(R, gamma)
        if jac:
            J = np.column_stack([J, Rg, K * Rg * np.log(np.where(R > 0, R, 1.0))])
        return pred + K * Rg, J

    def _starts(self, Z, y):
        if self.base is not None:
            base = np.array([[self.base[k] for k in CHINCHILLA_KEYS]])
        else:
            base = _chinchilla_starts(Z[:, 0], Z[:, 1], y, exponents=(0.2, 0.35, 0.5))
        scale = np.median(y)
        rows = [np.column_stack([base, np.full(len(base), k * scale), np.full(len(base), g)])
                for k, g in ((1e-4, 1.5), (1e-3, 1.5), (1e-2, 1.0))]
        return np.vstack(rows)
