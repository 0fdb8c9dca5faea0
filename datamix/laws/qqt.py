"""Quality-quantity trade-off (QQT) law of Goyal et al. (2024): repeated passes over data pools.

Array functions (the model, pools used together) and the :class:`QualityQuantity` estimator.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._validation import as_columns
from .base import Law

FORMS = ("datamix", "reference")
#: Sample normaliser of the reference code (``normalizer=100_000`` in its ``func_effective_utility``).
REFERENCE_NORMALIZER = 1e5
_LN2 = np.log(2.0)
# Utilities decay as 2^(-k/tau); past k = 60 tau they are below 1e-18 and further passes change nothing.
_DECAY_HORIZON = 60.0


def pass_terms(n: np.ndarray, S: np.ndarray, n_passes: int) -> np.ndarray:
    """Log-size increments of each pass, shape ``n.shape + (n_passes + 1,)``.

    Column 0 is :math:`\\log \\min(n, S)`; column :math:`k \\ge 1` is
    :math:`\\max(0, \\log(\\min(n, (k+1)S) / (kS)))`, the growth of samples seen during pass ``k``
    (zero for passes not reached).

    Parameters
    ----------
    n : ndarray
        Samples seen (> 0).
    S : ndarray
        Unique samples in the pool (> 0), broadcastable with ``n``.
    n_passes : int
        Number of repeat passes to include.
    """
    n, S = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(S, dtype=float))
    k = np.arange(1, n_passes + 1)
    rep = np.log(np.minimum(n[..., None], (k + 1) * S[..., None]) / (k * S[..., None]))
    return np.concatenate([np.log(np.minimum(n, S))[..., None], np.maximum(rep, 0.0)], axis=-1)


def passes_needed(n: np.ndarray, S: np.ndarray, tau_max: float) -> int:
    """Repeat passes that matter: those reached by the data, up to where utilities vanish."""
    reached = int(np.max(np.ceil(np.asarray(n) / np.asarray(S))) - 1)
    return max(0, min(reached, int(np.ceil(_DECAY_HORIZON * tau_max))))


def _error_from_terms(T: np.ndarray, beta: np.ndarray, a: float, d: float, form: str) -> np.ndarray:
    """QQT error from pass terms ``T`` and utilities ``beta`` (same shape, last axis = pass)."""
    if form == "reference":
        first = np.exp(beta[..., 0] * (np.log(a) + T[..., 0] - np.log(REFERENCE_NORMALIZER)))
        return (d + first) * np.exp(np.sum(beta[..., 1:] * T[..., 1:], axis=-1))
    return d + a * np.exp(np.sum(beta * T, axis=-1))


def qqt_error(n, S, a: float, b: float, tau: float, d: float, *, form: str = "datamix") -> np.ndarray:
    """QQT error of one pool after ``n`` samples seen from a pool of ``S`` unique samples.

    ``form="datamix"`` (DESIGN §3): with :math:`k` repeat passes done,

    .. math:: e(n) = a n^{b} \\ (n \\le S), \\qquad
              e(n) = e(kS) \\Big(\\frac{n}{kS}\\Big)^{b\\,2^{-k/\\tau}} \\ (kS < n \\le (k+1)S),
              \\qquad \\mathrm{error} = d + e(n).

    ``form="reference"`` is the reference code's variant: the floor is added before the
    multiplicative updates and samples are scaled, :math:`(d + (a\\min(n,S)/10^5)^{b})
    \\prod_k (\\ldots)^{b 2^{-k/\\tau}}`.

    Parameters
    ----------
    n, S : array-like
        Samples seen and pool size (broadcastable, > 0).
    a, b, tau, d : float
        Scale (> 0), utility (< 0), half-life in passes (> 0), floor (>= 0).
    form : {"datamix", "reference"}, default="datamix"

    Returns
    -------
    ndarray
        Error, shape of ``broadcast(n, S)``.

    Examples
    --------
    One pass: :math:`100^{-1/2}`; a second pass over 1000 samples halves the utility (``tau=1``):

    >>> round(float(qqt_error(100.0, 1000.0, a=1.0, b=-0.5, tau=1.0, d=0.0)), 12)
    0.1
    >>> round(float(qqt_error(2000.0, 1000.0, a=1.0, b=-0.5, tau=1.0, d=0.0)), 6)  # 1000**-0.5 * 2**-0.25
    0.026591
    """
    return qqt_mixture_error(n, [S], a, [b], [tau], d, form=form)


def qqt_mixture_error(n, sizes, a: float, b, tau, d: float, *, form: str = "datamix") -> np.ndarray:
    """QQT error when several pools are used together (sampled in proportion to their sizes).

    The union of the pools has :math:`S = \\sum_i S_i` samples; the utility of pass ``k`` over it is
    the size-weighted average of the pools' decayed utilities, with half-lives stretched by the
    number of pools ``m``: :math:`b_k = \\sum_i (S_i/S)\\, b_i 2^{-k/(m\\tau_i)}` (for equal sizes the
    plain average of Goyal et al. 2024). The error then follows :func:`qqt_error`'s recursion with
    :math:`b_k` in place of :math:`b 2^{-k/\\tau}`.

    Parameters
    ----------
    n : array-like
        Samples seen (> 0).
    sizes, b, tau : array-like of shape (n_pools,)
        Pool sizes, utilities and half-lives.
    a, d : float
    form : {"datamix", "reference"}, default="datamix"

    Returns
    -------
    ndarray of the shape of ``n``
    """
    sizes, b, tau = (np.asarray(v, dtype=float).reshape(-1) for v in (sizes, b, tau))
    m = sizes.size
    total = sizes.sum()
    n = np.asarray(n, dtype=float)
    J = passes_needed(n, total, m * tau.max())
    k = np.arange(J + 1)
    beta = (sizes / total * b) @ np.power(2.0, -k[None, :] / (m * tau[:, None]))
    return _error_from_terms(pass_terms(n, total, J), beta, a, d, form)


class QualityQuantity(Law):
    """QQT law: per-pool utility ``b[pool] < 0`` and half-life ``tau[pool] > 0``, shared ``a``, ``d``.

    X is a DataFrame with columns ``pool`` (name), ``n`` (samples seen) and ``S`` (unique samples
    in the pool); any number of passes ``n / S``. See :func:`qqt_error` for the two forms and
    :class:`~datamix.laws.base.Law` for the fit options.

    Parameters
    ----------
    form : {"datamix", "reference"}, default="datamix"
        ``"reference"`` evaluates (and fits) the reference code's variant, so that its published
        parameters can be used.
    shared : dict, default=None
        Values of the shared ``a`` and/or ``d`` to hold fixed (e.g. the published ones); the other
        parameters are fitted.
    **kwargs
        Fit options of :class:`~datamix.laws.base.Law`.

    Attributes
    ----------
    pools_ : list of str
        Pool names in order of first appearance.
    pool_sizes_ : dict of str to float
        Largest ``S`` seen for each pool (the default size in :meth:`predict_mixture`).
    params_ : dict of str to float
        ``a``, ``d``, then ``b[POOL]`` and ``tau[POOL]`` per pool.

    References
    ----------
    Goyal et al. 2024, "Scaling Laws for Data Filtering -- Data Curation cannot be Compute Agnostic".
    """

    columns = ("pool", "n", "S")

    def __init__(
        self, *, form="datamix", shared=None, loss="huber", f_scale=1e-3, log_target=True, bounds=None, n_starts=None,
        max_iter=1000, tol=1e-12, n_bootstrap=100, seed=0,
    ):
        super().__init__(loss=loss, f_scale=f_scale, log_target=log_target, bounds=bounds, n_starts=n_starts,
                         max_iter=max_iter, tol=tol, n_bootstrap=n_bootstrap, seed=seed)
        self.form = form
        self.shared = shared

    # ------------------------------------------------------------------ public
    def predict_mixture(self, pools: Sequence[str] | Mapping[str, float], n) -> np.ndarray:
        """Error when the given pools are used together for ``n`` samples seen.

        Parameters
        ----------
        pools : sequence of str, or mapping of str to float
            Pool names (sizes from ``pool_sizes_``) or ``{name: unique samples}``.
        n : float or array-like
            Samples seen (> 0).

        Returns
        -------
        ndarray of the shape of ``n``
        """
        check_is_fitted(self)
        names, sizes = self._pool_sizes(pools)
        shape = np.shape(n)
        flat = as_columns(np.reshape(n, (-1, 1)), ("n",), owner="predict_mixture")[:, 0]
        p = self.params_
        err = qqt_mixture_error(
            flat, sizes, p["a"], [p[f"b[{q}]"] for q in names], [p[f"tau[{q}]"] for q in names], p["d"],
            form=self.form,
        )
        return err.reshape(shape)

    # ------------------------------------------------------------------ Law hooks
    def _validate_hyper(self):
        if self.form not in FORMS:
            raise ValueError(f"form={self.form!r} is not supported; expected one of {FORMS}.")
        if self.shared is not None and (not isinstance(self.shared, Mapping) or not set(self.shared) <= {"a", "d"}
                                        or not all(np.isfinite(v) and v > 0 for v in self.shared.values())):
            raise ValueError(f"shared must be a dict with keys among 'a', 'd', positive and finite; "
                             f"got {self.shared!r}.")

    def _fixed(self):
        return {k: float(v) for k, v in (self.shared or {}).items()}

    def _design(self, X, *, reset):
        if sp.issparse(X):  # before the Mapping test: a DOK matrix is a dict
            raise TypeError("QualityQuantity does not accept sparse input; pass a DataFrame.")
        if isinstance(X, Mapping):
            X = pd.DataFrame(X)
        if not isinstance(X, pd.DataFrame):
            raise ValueError(
                "X must be a DataFrame (or dict of columns) with columns 'pool', 'n', 'S' for "
                f"QualityQuantity; got {type(X).__name__}."
            )
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing column(s) {missing}; QualityQuantity needs columns {list(self.columns)}.")
        num = as_columns(X, ("n", "S"), owner="QualityQuantity")
        pool = X["pool"].astype(str).to_numpy()
        if reset:
            self.pools_ = list(pd.unique(pool))
            self.pool_sizes_ = {q: float(num[pool == q, 1].max()) for q in self.pools_}
            self.n_features_in_ = 3
        index = {q: i for i, q in enumerate(self.pools_)}
        unknown = sorted(set(pool) - set(index))
        if unknown:
            raise ValueError(f"unknown pool(s) {unknown}; the law knows {self.pools_}.")
        return np.array([index[q] for q in pool]), num[:, 0], num[:, 1]

    @staticmethod
    def _n_samples(Z):
        return len(Z[0])

    @staticmethod
    def _take(Z, idx):
        return tuple(z[idx] for z in Z)

    scale_names = ("samples seen", "epochs over the pool")

    def _scales(self, Z):  # samples seen and epochs over the pool
        return np.column_stack([Z[1], Z[1] / Z[2]])

    _epochs_scale = 1

    def _repetition_extremes(self, Z):  # n samples all from a pool that large; or one pass of the pool
        idx, n, S = Z
        return (idx, n, np.maximum(S, n)), (idx, np.minimum(n, S), S)

    def _init_from_params(self, params):
        self.pools_ = [k[2:-1] for k in params if k.startswith("b[") and k.endswith("]")]
        self.pool_sizes_ = {}
        self.n_features_in_ = 3

    def _spec(self):
        spec = [("a", "log", (0.0, np.inf)), ("d", "log", (0.0, np.inf))]
        spec += [(f"b[{q}]", "neglog", (-10.0, 0.0)) for q in self.pools_]
        return spec + [(f"tau[{q}]", "log", (1e-2, 1e4)) for q in self.pools_]

    def _model(self, theta, Z, jac):
        idx, n, S = Z
        P = len(self.pools_)
        a, d = theta[0], theta[1]
        b, tau = theta[2:2 + P][idx], theta[2 + P:][idx]
        J_passes = passes_needed(n, S, tau.max())
        k = np.arange(J_passes + 1)
        decay = np.power(2.0, -k[None, :] / tau[:, None])
        T = pass_terms(n, S, J_passes)
        pred = _error_from_terms(T, b[:, None] * decay, a, d, self.form)
        if not jac:
            return pred, None
        u = decay * T                                  # utility-free pass terms
        du_dtau = u * (k[None, :] * _LN2 / tau[:, None] ** 2)
        rep = 1 if self.form == "reference" else 0     # reference: pass 0 is outside the product
        g = pred - d if self.form == "datamix" else pred
        J = np.zeros((n.size, 2 + 2 * P))
        if self.form == "datamix":
            J[:, 0], J[:, 1] = g / a, 1.0
            db = g * u.sum(axis=1)
        else:
            prod = np.exp(b * u[:, 1:].sum(axis=1))
            first = np.exp(b * (np.log(a) + T[:, 0] - np.log(REFERENCE_NORMALIZER)))
            J[:, 0], J[:, 1] = prod * first * b / a, prod
            db = prod * first * (np.log(a) + T[:, 0] - np.log(REFERENCE_NORMALIZER)) + g * u[:, 1:].sum(axis=1)
        dtau = g * b * du_dtau[:, rep:].sum(axis=1)
        rows = np.arange(n.size)
        J[rows, 2 + idx] = db
        J[rows, 2 + P + idx] = dtau
        return pred, J

    def _starts(self, Z, y):
        idx, n, S = Z
        rows = []
        for frac in (0.0, 0.5, 0.8, 0.95):
            d = frac * y.min()
            slopes, log_a = [], []
            for i in range(len(self.pools_)):
                first = (idx == i) & (n <= S)
                sel = first if np.unique(n[first]).size >= 2 else idx == i
                if np.unique(n[sel]).size < 2:
                    slopes.append(-0.1)
                    continue
                slope, intercept = np.polyfit(np.log(n[sel]), np.log(np.maximum(y[sel] - d, 1e-12)), 1)
                slope = min(slope, -1e-3)
                slopes.append(slope)
                log_a.append(intercept if self.form == "datamix" else intercept / slope + np.log(REFERENCE_NORMALIZER))
            a = float(np.exp(np.median(log_a))) if log_a else float(y.mean())
            for tau in (1.0, 4.0, 16.0):
                rows.append([a, max(d, 1e-6 * y.min())] + slopes + [tau] * len(self.pools_))
        return np.array(rows)

    # ------------------------------------------------------------------ helpers
    def _pool_sizes(self, pools):
        if isinstance(pools, str):
            pools = [pools]
        if isinstance(pools, Mapping):
            names, sizes = list(pools), np.asarray(list(pools.values()), dtype=float)
        else:
            names = list(pools)
            missing_size = [q for q in names if q in self.pools_ and q not in self.pool_sizes_]
            if missing_size:
                raise ValueError(f"no size known for pool(s) {missing_size}; pass pools as a dict {{name: size}}.")
            sizes = np.array([self.pool_sizes_.get(q, np.nan) for q in names])
        if not names:
            raise ValueError("pools is empty; give at least one pool name.")
        unknown = [q for q in names if q not in self.pools_]
        if unknown:
            raise ValueError(f"unknown pool(s) {unknown}; the law knows {self.pools_}.")
        if len(set(names)) != len(names):
            raise ValueError(f"pools has repeated names: {names}.")
        if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
            raise ValueError(f"pool sizes must be positive and finite; got {dict(zip(names, sizes))}.")
        return names, sizes
