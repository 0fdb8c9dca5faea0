"""The estimator base shared by all laws: validation, multi-start fit, bootstrap intervals, score."""

from __future__ import annotations

import logging
import warnings
from typing import Mapping

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from ._fit import LOSSES, fit_multistart, internal_bounds, make_objective
from ._validation import as_columns, as_target, as_weights, check_level, check_number

logger = logging.getLogger(__name__)


def relative_error(y_pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Absolute relative error ``|y_pred - y| / |y|``, elementwise."""
    return np.abs(np.asarray(y_pred) - y) / np.abs(y)


def fit_residuals(y: np.ndarray, y_hat: np.ndarray, n_params: int) -> tuple[np.ndarray, bool]:
    """Errors of a fit on its own points, to spread a prediction by: ``(residuals (n,),
    multiplicative)``, the residuals ``log(y / y_hat)`` when both are positive (as the laws' log
    loss), else ``y - y_hat``. Scaled by ``sqrt(n / (n - n_params))`` (at most 3), since residuals
    on the fitted points understate the error on new ones."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    n = y.size
    inflate = min(3.0, float(np.sqrt(n / (n - n_params)))) if n > n_params else 3.0
    if (y > 0).all() and (y_hat > 0).all():
        return inflate * np.log(y / y_hat), True
    return inflate * (y - y_hat), False


def calibrated_interval(boot: np.ndarray, point: np.ndarray, residuals: np.ndarray, level: float,
                        *, multiplicative: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Prediction interval from parameter and model error together.

    Central ``level`` quantiles of ``boot[b, i] * exp(residuals[j])`` (or ``+ residuals[j]``) over
    every refit ``b`` and residual ``j``: the bootstrap refits carry the parameters' uncertainty,
    the fit's residuals the model's own error around them. Widened to contain ``point``.

    Parameters
    ----------
    boot : ndarray of shape (n_boot, n_samples)
        Predictions of the bootstrap refits.
    point : ndarray of shape (n_samples,)
        The fitted law's prediction.
    residuals : ndarray of shape (n_residuals,)
        From :func:`fit_residuals` (empty: the bootstrap alone).
    level : float
    multiplicative : bool, default=True
        Residuals are log ratios (True) or differences (False).

    Returns
    -------
    lo, hi : ndarray of shape (n_samples,)
    """
    boot = np.atleast_2d(np.asarray(boot, dtype=float))
    r = np.asarray(residuals, dtype=float).reshape(-1)
    if r.size:
        draws = boot[:, :, None] * np.exp(r) if multiplicative else boot[:, :, None] + r
        draws = draws.transpose(1, 0, 2).reshape(boot.shape[1], -1)
    else:
        draws = boot.T
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=1)
    return np.minimum(lo, point), np.maximum(hi, point)


class Law(RegressorMixin, BaseEstimator):
    """Base class of the scaling laws: a parametric ``y = f(X; theta)`` fitted by robust multi-start L-BFGS-B.

    The fit minimises

    .. math:: \\sum_i w_i\\, \\mathrm{huber}_\\delta\\big(\\log f(x_i;\\theta) - \\log y_i\\big)

    over ``theta``, with positive (negative) parameters optimised as ``log theta`` (``log -theta``),
    from a grid of starting points computed from the data; the lowest cost over all starts wins.

    Parameters
    ----------
    loss : {"huber", "linear", "soft_l1", "cauchy", "arctan"}, default="huber"
        Robust loss on the residuals (scipy's ``least_squares`` vocabulary).
    f_scale : float, default=1e-3
        Residual scale of the robust loss (Huber ``delta``), in log units when ``log_target``.
    log_target : bool, default=True
        Residuals ``log y_hat - log y`` (needs ``y > 0``); otherwise ``y_hat - y``.
    bounds : dict or (lower, upper), default=None
        Parameter bounds in natural units: a dict ``{name: (lo, hi)}`` overriding the defaults, or two
        sequences in ``param_names`` order; ``np.inf`` means unbounded.
    n_starts : int, default=None
        Run L-BFGS-B from the ``n_starts`` best grid points (by cost); ``None`` runs all of them.
    max_iter : int, default=1000
        L-BFGS-B iterations per start.
    tol : float, default=1e-12
        L-BFGS-B ``ftol`` (``gtol = 1e3 * tol``).
    n_bootstrap : int, default=100
        Bootstrap refits behind :meth:`predict_interval`.
    seed : int or numpy.random.Generator, default=0
        Source of all randomness: the bootstrap resampling (and seeded start perturbations where a law
        uses them).

    Attributes
    ----------
    params_ : dict of str to float
        Fitted parameters by name.
    result_ : scipy.optimize.OptimizeResult
        Raw result of the best start.
    converged_ : bool
        Whether at least one start converged.
    cost_ : float
        Best objective (weighted mean robust loss in units of ``f_scale**2``).
    n_iter_ : int
        Iterations of the best start.
    n_starts_ : int
        L-BFGS-B runs performed.
    n_features_in_ : int
        Number of X columns.

    Raises
    ------
    ValueError
        From ``fit``: NaN/inf, values outside a column's domain, non-positive ``y`` under
        ``log_target``, missing DataFrame columns, a wrong column count, fewer points than free
        parameters, bad hyper-parameters.

    See Also
    --------
    datamix.laws.select_law : choose among laws by extrapolation error.

    Notes
    -----
    Subclasses define ``_spec`` (names, transforms, default bounds), ``_model`` (predictions and
    optionally the Jacobian), ``_starts`` and, where the X is not a plain table, ``_design``.
    A fit in which no start converges warns with a ``ConvergenceWarning`` quoting L-BFGS-B's message
    and keeps the best state.
    """

    #: X column names, in array order.
    columns: tuple[str, ...] = ()
    #: Names of the scales along which the law extrapolates (see :meth:`extrapolation`).
    scale_names: tuple[str, ...] = ()
    #: Allowed values of the X columns (see :func:`~datamix.laws._validation.as_columns`).
    column_domain = "positive"

    def __init__(
        self, *, loss="huber", f_scale=1e-3, log_target=True, bounds=None, n_starts=None,
        max_iter=1000, tol=1e-12, n_bootstrap=100, seed=0,
    ):
        self.loss = loss
        self.f_scale = f_scale
        self.log_target = log_target
        self.bounds = bounds
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.tol = tol
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.target_tags.positive_only = bool(self.log_target)
        tags.target_tags.required = True
        # score() is the negative mean relative error (at most 0, the DESIGN contract), not sklearn's R^2.
        tags.regressor_tags.poor_score = True
        return tags

    # ------------------------------------------------------------------ hooks for subclasses
    def _design(self, X, *, reset: bool):
        """Validated numeric design ``Z`` for the model (default: the named columns as an array)."""
        Z = as_columns(X, self._columns(), owner=type(self).__name__, domain=self.column_domain)
        if reset:
            self.n_features_in_ = Z.shape[1]
        return Z

    def _columns(self) -> tuple[str, ...]:
        return self.columns

    def _spec(self) -> list[tuple[str, str, tuple[float, float]]]:
        """``[(name, transform, (lo, hi)), ...]``; transform is ``"log"``, ``"neglog"`` or ``"linear"``."""
        raise NotImplementedError

    def _model(self, theta: np.ndarray, Z, jac: bool):
        """Predictions (n_samples,) and, if ``jac``, the Jacobian (n_samples, n_params) or ``None``."""
        raise NotImplementedError

    def _starts(self, Z, y: np.ndarray) -> np.ndarray:
        """Grid of starting points (n_starts, n_params) in natural units, computed from the data."""
        raise NotImplementedError

    def _scales(self, Z) -> np.ndarray | None:
        """Positive quantities along which the law extrapolates (data, parameters, epochs), shape
        (n_samples, n_scales); None for a law without such an axis (mixture proportions)."""
        return None

    #: Index of the epochs scale in ``_scales`` (None: the law has no repetition axis).
    _epochs_scale: int | None = None

    def _repetition_extremes(self, Z):
        """Designs ``(fresh, once)`` for the rows of ``Z``, each at most one epoch: the same
        training with every repeat replaced by fresh data (repetition worth as much as new data),
        and only its first pass over the data (repeats worth nothing). Needed with ``_epochs_scale``."""
        raise NotImplementedError

    def _fixed(self) -> dict[str, float]:
        """Parameters held fixed during the fit (name -> value)."""
        return {}

    def _validate_hyper(self) -> None:
        """Extra hyper-parameter checks of a subclass."""

    def _init_from_params(self, params: Mapping[str, float]) -> None:
        """Set data-dependent structure (e.g. pool names) from parameter names, for :meth:`from_params`."""

    @staticmethod
    def _take(Z, idx: np.ndarray):
        return Z[idx]

    # ------------------------------------------------------------------ public API
    @property
    def param_names(self) -> list[str]:
        """Parameter names in internal order (needs the fitted structure)."""
        return [name for name, _, _ in self._spec()]

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None):
        """Fit the law.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_columns)
            See the class' ``columns``.
        y : array-like of shape (n_samples,)
            Target (a loss or an error rate; positive when ``log_target``).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On bad input or hyper-parameters, or fewer points than free parameters.
        """
        self._check_hyper()
        Z = self._design(X, reset=True)
        n = self._n_samples(Z)
        y = as_target(y, n, log_target=self.log_target)
        w = as_weights(sample_weight, n)
        names, transforms, lower, upper = self._resolved_spec()
        fixed = self._fixed()
        free = np.array([name not in fixed for name in names])
        n_eff = int(np.count_nonzero(w))
        if n_eff < free.sum():
            raise ValueError(
                f"{type(self).__name__} has {free.sum()} free parameters but got n_samples={n_eff} "
                f"points with non-zero weight; need at least {free.sum()}."
            )
        starts = np.array(self._starts(Z, y), dtype=float, ndmin=2)
        for j, name in enumerate(names):
            if name in fixed:
                starts[:, j] = fixed[name]
        outcome = self._optimize(Z, y, w, starts, free, transforms, lower, upper, self.n_starts)
        if not outcome.converged:
            warnings.warn(
                f"{type(self).__name__}: no L-BFGS-B start converged (best of {outcome.n_starts}: "
                f"{outcome.result.message!r}); params_ hold the best state. Increase max_iter "
                f"(now {self.max_iter}) or tol (now {self.tol}).",
                ConvergenceWarning, stacklevel=2,
            )
        self.params_ = {name: float(v) for name, v in zip(names, outcome.theta)}
        self.result_ = outcome.result
        self.converged_ = outcome.converged
        self.cost_ = float(outcome.result.fun)
        self.n_iter_ = int(outcome.result.nit)
        self.n_starts_ = outcome.n_starts
        self._train = (Z, y, w, free)
        self._boot = None
        self._slopes = {}
        self.calibrated_reach_ = self._reach()
        logger.debug("%s: cost %.6g after %d starts, converged=%s", type(self).__name__, self.cost_,
                     self.n_starts_, self.converged_)
        return self

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """Predicted target, shape (n_samples,)."""
        check_is_fitted(self)
        Z = self._design(X, reset=False)
        return self._model(self._theta(), Z, False)[0]

    def predict_interval(self, X: npt.ArrayLike, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Prediction interval: the parameters' uncertainty and the law's own error, also past the
        fitted range.

        The law is refitted ``n_bootstrap`` times on points resampled with replacement (seeded by
        ``seed``, started from the fitted parameters; the refits are cached), and each refit's
        prediction is spread by the fit's residuals on its points (:func:`fit_residuals`): the
        interval holds the central ``level`` of those draws (:func:`calibrated_interval`), and
        always the point prediction. A parameter bootstrap alone covers only the first part: on a
        law that fits its points to 1% it gives intervals far narrower than the law's error.
        Rows past the fitted range (:meth:`extrapolation`) are widened to at least the in-range
        residuals' ``level`` quantile plus the error growth measured by refitting on the smaller
        points and predicting the larger ones, which grows with the squared distance (held-out
        scale calibration; computed once per level). Rows farther out than those refits were
        checked (:meth:`calibrated` False) carry that growth past anything measured: a warning
        names how many and along which scale. For a law with a repetition axis, a row repeating
        its data more than the calibration reached is also widened to the envelope of the two
        extremes of what repetition can be worth: the interval of the same training on fresh data
        (lower end) and of its first pass alone (upper end); on the 182 published
        data-constrained runs fitted up to 4 epochs, that took the coverage of the runs at 5 to
        9000 epochs from 35% to 95% (``benchmarks/coverage.py``). Repetition that raises the loss
        above a single pass (overfitting: OSCAR's 44-epoch runs) lies outside the envelope.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_columns)
        level : float, default=0.9
            Central coverage of the interval, in (0, 1).

        Returns
        -------
        lo, hi : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        check_level(level)
        if getattr(self, "_train", None) is None:
            raise ValueError(f"predict_interval needs a {type(self).__name__} fitted with fit(), not from_params().")
        Z = self._design(X, reset=False)
        rho = self._distance(Z)
        if rho is not None:
            self._warn_uncalibrated(rho)
        return self._interval(Z, level)

    def _interval(self, Z, level: float, envelope: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_interval` of design ``Z``: bootstrap and residuals, widened past the
        fitted range, and (``envelope``) past the calibrated epochs to the repetition envelope."""
        preds = np.array([self._model(t, Z, False)[0] for t in self._bootstrap_thetas()])
        r, multiplicative = self._residuals()
        point = self._model(self._theta(), Z, False)[0]
        lo, hi = calibrated_interval(preds, point, r, level, multiplicative=multiplicative)
        rho = self._distance(Z)
        lo, hi = self._widened(point, lo, hi, rho, level)
        if rho is None or self._epochs_scale is None or not envelope:
            return lo, hi
        rows = np.flatnonzero(self._beyond_reach(rho)[:, self._epochs_scale])
        if rows.size:  # the extremes repeat nothing: no envelope of their own
            fresh, once = self._repetition_extremes(self._take(Z, rows))
            lo[rows] = np.minimum(lo[rows], self._interval(fresh, level, envelope=False)[0])
            hi[rows] = np.maximum(hi[rows], self._interval(once, level, envelope=False)[1])
        return lo, hi

    def _warn_uncalibrated(self, rho: np.ndarray) -> None:
        """Warn when rows lie ``rho`` (n, n_scales) past the fitted range farther than ``calibrated_reach_``."""
        beyond = self._beyond_reach(rho)
        if beyond.any():
            k = int(np.argmax(beyond.sum(axis=0)))
            warnings.warn(
                f"{type(self).__name__}: {int(beyond.any(axis=1).sum())} of {len(rho)} rows lie past the fitted "
                f"{self.scale_names[k]} farther than its held-out-scale calibration was checked (up to "
                f"{np.exp(self.calibrated_reach_[k]):.3g}x past a cut; these lie up to "
                f"{np.exp(rho[:, k].max()):.3g}x past the fitted maximum): their intervals extend the error's growth past anything "
                "measured and are not calibrated (see calibrated())"
                + (": past the calibrated epochs they span repetition worth nothing to repetition as good as fresh "
                   "data" if self._epochs_scale is not None and beyond[:, self._epochs_scale].any() else "")
                + ".", UserWarning, stacklevel=3)

    def _widened(self, point, lo, hi, rho, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Interval ``(lo, hi)`` around ``point`` (n,) widened, for rows lying ``rho`` (n, n_scales)
        past the fitted range, to the in-range residuals' ``level`` quantile plus the calibrated
        growth ``rho**2 @ slopes`` (:meth:`_extrapolation_slopes`); rows inside are kept."""
        if rho is None or not (rho > 0).any():
            return lo, hi
        r, multiplicative = self._residuals()
        half = np.quantile(np.abs(r), level) + rho ** 2 @ self._extrapolation_slopes(level)
        half = np.where(rho.any(axis=1), half, 0.0)
        wide = (point * np.exp(-half), point * np.exp(half)) if multiplicative else (point - half, point + half)
        return np.minimum(lo, wide[0]), np.maximum(hi, wide[1])

    def extrapolation(self, X: npt.ArrayLike) -> np.ndarray:
        """How far each row of ``X`` lies past the fitted points along each of the law's scales
        (data, parameters, epochs): ``log(s / s_max)`` with ``s_max`` the largest fitted value, 0
        inside the fitted range; shape (n_samples, n_scales) (n_scales = 0 for a law without a
        scale axis, such as the mixing laws)."""
        check_is_fitted(self)
        Z = self._design(X, reset=False)
        rho = self._distance(Z)
        return np.zeros((self._n_samples(Z), 0)) if rho is None else rho

    def _distance(self, Z, fitted=None) -> np.ndarray | None:
        """:meth:`extrapolation` of design ``Z`` past the training rows ``fitted`` (a mask over
        them; default: those of non-zero weight)."""
        S = self._scales(Z)
        if S is None or getattr(self, "_train", None) is None:
            return None
        Zt, _, w, _ = self._train
        St = self._scales(Zt)[w > 0 if fitted is None else fitted]
        return np.log(np.maximum(S / St.max(axis=0), 1.0))

    def _extrapolation_slopes(self, level: float) -> np.ndarray:
        """How fast the law's error grows past its range along each scale, shape (n_scales,): the
        error (log ratio or difference) beyond the in-range residuals' level-quantile is taken to
        grow as ``slope * distance**2`` (a law fitted to its points matches their level and slope
        at the edge, so a smooth misfit shows first at second order). Along scale k the law is
        refitted, from the 5 best of its own starts, on the points up to a cut (at 1/2, 5/8, 3/4 and 7/8 of the
        distinct values, values within 1% counting as one; a cut must leave more points than free
        parameters), and the excess error of every point past the cut is divided by its squared
        distance along k; the slope is the conformal ``level`` quantile of those ratios (their
        largest when there are few). A scale no cut can calibrate gets the largest slope of the
        others (0 when none can). Cached per level."""
        if level in self._slopes:
            return self._slopes[level]
        Z, y, w, free = self._train
        names, transforms, lower, upper = self._resolved_spec()
        r_in, multiplicative = self._residuals()
        q_in = np.quantile(np.abs(r_in), level)
        slopes = np.full(len(self.calibrated_reach_), np.nan)
        for k in range(len(slopes)):
            ratios = []
            for inside, past in self._cuts(k):
                idx = np.flatnonzero(inside)
                starts = np.array(self._starts(self._take(Z, idx), y[idx]), dtype=float, ndmin=2)
                starts[:, ~free] = self._theta()[~free]  # the refit starts from its data, never from the full fit
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    theta = self._optimize(self._take(Z, idx), y[idx], w[idx], starts, free, transforms, lower,
                                           upper, 5).theta
                Zp = self._take(Z, np.flatnonzero(past))
                y_hat = self._model(theta, Zp, False)[0]
                err = np.log(y[past] / y_hat) if multiplicative else y[past] - y_hat
                rho = self._distance(Zp, fitted=inside)[:, k]
                ratios += list(np.maximum(np.abs(err) - q_in, 0.0) / rho ** 2)
            m = len(ratios)
            if m:
                slopes[k] = np.quantile(ratios, min(1.0, np.ceil((m + 1) * level) / m))
        known = slopes[np.isfinite(slopes)]
        slopes[~np.isfinite(slopes)] = known.max() if known.size else 0.0
        self._slopes[level] = slopes
        return slopes

    def _cuts(self, k: int):
        """Masks ``(inside, past)`` over the training rows for each held-out-scale cut along scale
        ``k``: the rows up to a cut at 1/2, 5/8, 3/4 and 7/8 of the distinct values (within 1% one
        value), and those past it; a cut must leave more rows inside than free parameters."""
        Z, _, w, free = self._train
        used, log_s = w > 0, np.log(self._scales(Z)[:, k])
        values = np.unique(np.round(log_s[used], 2))
        for cut in np.unique(values[(len(values) * np.array([4, 5, 6, 7]) // 8).clip(0, len(values) - 2)]):
            inside, past = used & (log_s <= cut + 0.005), used & (log_s > cut + 0.005)
            if inside.sum() > free.sum():
                yield inside, past

    def _reach(self) -> np.ndarray:
        """``calibrated_reach_``: along each scale, the largest distance past a cut at which a
        held-out-scale refit was checked (0 where no cut calibrates), shape (n_scales,)."""
        Z = self._train[0]
        S = self._scales(Z)
        reach = np.zeros(0 if S is None else S.shape[1])
        for k in range(reach.size):
            for inside, past in self._cuts(k):
                if past.any():
                    rho = self._distance(self._take(Z, np.flatnonzero(past)), fitted=inside)[:, k]
                    reach[k] = max(reach[k], float(rho.max()))
        return reach

    def calibrated(self, X: npt.ArrayLike) -> np.ndarray:
        """Whether each row's interval rests on measured errors, shape (n_samples,): True inside
        the fitted range and up to ``calibrated_reach_`` past it along every scale (as far as the
        held-out-scale refits were checked), False farther out, where :meth:`predict_interval`
        carries the error's growth past anything measured (in ``benchmarks/coverage.py`` such
        intervals held far less than their level)."""
        return ~self._beyond_reach(self.extrapolation(X)).any(axis=1)

    def _beyond_reach(self, rho: np.ndarray) -> np.ndarray:
        """Mask (n, n_scales) of distances ``rho`` past the fitted range farther than ``calibrated_reach_``."""
        reach = getattr(self, "calibrated_reach_", np.zeros(rho.shape[1]))  # from_params: no fitted range
        return rho > reach * (1 + 1e-9)

    def _residuals(self) -> tuple[np.ndarray, bool]:
        """:func:`fit_residuals` of the fit on its training points (those of non-zero weight)."""
        Z, y, w, free = self._train
        keep = w > 0
        y_hat = self._model(self._theta(), Z, False)[0]
        return fit_residuals(y[keep], y_hat[keep], int(free.sum()))

    def bootstrap_params(self) -> list[dict[str, float]]:
        """Parameters of the ``n_bootstrap`` bootstrap refits behind :meth:`predict_interval`.

        Each refit resamples the training points with replacement (seeded by ``seed``) and starts
        from the fitted parameters; the refits are computed once and cached.

        Returns
        -------
        list of dict of str to float
            ``n_bootstrap`` dicts keyed like ``params_``.

        Raises
        ------
        ValueError
            For a law made with :meth:`from_params` (no points to resample).
        """
        check_is_fitted(self)
        if getattr(self, "_train", None) is None:
            raise ValueError(f"bootstrap_params needs a {type(self).__name__} fitted with fit(), not from_params().")
        names = self.param_names
        return [dict(zip(names, map(float, theta))) for theta in self._bootstrap_thetas()]

    def score(self, X: npt.ArrayLike, y: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None) -> float:
        """Negative mean absolute relative error, ``-mean |y_hat - y| / |y|``: scikit-learn's convention
        (higher is better, 0 is perfect), so ``GridSearchCV`` and ``cross_val_score`` rank laws right.
        :func:`relative_error` gives the error itself."""
        y_pred = self.predict(X)
        y = as_target(y, y_pred.size, log_target=False)
        return -float(np.average(relative_error(y_pred, y), weights=as_weights(sample_weight, y.size)))

    @classmethod
    def from_params(cls, params: Mapping[str, float], **hyper):
        """A law with given parameters, ready to ``predict`` (no fit).

        Parameters
        ----------
        params : mapping of str to float
            All parameters, named as in ``params_``.
        **hyper
            Hyper-parameters of the class (e.g. ``form="reference"``).
        """
        law = cls(**hyper)
        law._check_hyper()
        law._init_from_params(params)
        names = law.param_names
        unknown = sorted(set(params) - set(names))
        missing = [n for n in names if n not in params]
        if unknown or missing:
            raise ValueError(f"params for {cls.__name__}: missing {missing}, unknown {unknown}; expected {names}.")
        law.params_ = {n: float(params[n]) for n in names}
        law._train = None
        return law

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _n_samples(Z) -> int:
        return len(Z)

    def _theta(self) -> np.ndarray:
        return np.array([self.params_[n] for n in self.param_names])

    def _check_hyper(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} is not supported; expected one of {LOSSES}.")
        check_number(self.f_scale, "f_scale", low=0, low_open=True)
        if not isinstance(self.log_target, (bool, np.bool_)):
            raise ValueError(f"log_target must be True or False; got {self.log_target!r}.")
        if self.n_starts is not None:
            check_number(self.n_starts, "n_starts", low=1, integer=True)
        check_number(self.max_iter, "max_iter", low=1, integer=True)
        check_number(self.tol, "tol", low=0, low_open=True)
        check_number(self.n_bootstrap, "n_bootstrap", low=2, integer=True)
        if not (self.seed is None or isinstance(self.seed, (int, np.integer, np.random.Generator))):
            raise ValueError(f"seed must be an int, a numpy Generator or None; got {self.seed!r}.")
        self._validate_hyper()

    def _resolved_spec(self):
        spec = self._spec()
        names = [s[0] for s in spec]
        transforms = np.array([s[1] for s in spec])
        lower = np.array([s[2][0] for s in spec], dtype=float)
        upper = np.array([s[2][1] for s in spec], dtype=float)
        if isinstance(self.bounds, Mapping):
            unknown = sorted(set(self.bounds) - set(names))
            if unknown:
                raise ValueError(f"bounds has unknown parameter(s) {unknown}; parameters are {names}.")
            for name, (lo, hi) in self.bounds.items():
                lower[names.index(name)], upper[names.index(name)] = lo, hi
        elif self.bounds is not None:
            try:
                lo, hi = (np.broadcast_to(np.asarray(b, dtype=float), (len(names),)) for b in self.bounds)
            except (TypeError, ValueError):
                raise ValueError(
                    f"bounds must be a dict {{name: (lo, hi)}} or (lower, upper) with {len(names)} "
                    f"values each (parameters {names}); got {self.bounds!r}."
                ) from None
            lower, upper = lo.copy(), hi.copy()
        sign_ok = np.where(transforms == "log", (lower >= 0) & (upper > 0),
                           np.where(transforms == "neglog", (upper <= 0) & (lower < 0), True))
        if np.any(lower > upper) or not np.all(sign_ok):
            bad = [n for n, ok, lo, hi in zip(names, sign_ok, lower, upper) if not ok or lo > hi]
            raise ValueError(f"bounds are empty or cross the sign constraint of parameter(s) {bad}.")
        return names, transforms, lower, upper

    def _optimize(self, Z, y, w, starts, free, transforms, lower, upper, n_starts):
        theta0 = starts[0].copy()
        objective = make_objective(
            self._model, Z, y, w, transforms=transforms, free=free, theta_fixed=theta0,
            loss=self.loss, f_scale=self.f_scale, log_target=self.log_target,
        )
        bounds = internal_bounds(lower[free], upper[free], transforms[free])
        return fit_multistart(
            objective, starts, transforms=transforms, free=free, bounds=bounds,
            n_starts=n_starts, max_iter=self.max_iter, tol=self.tol,
        )

    def _bootstrap_thetas(self) -> np.ndarray:
        if self._boot is None:
            Z, y, w, free = self._train
            names, transforms, lower, upper = self._resolved_spec()
            rng = np.random.default_rng(self.seed)
            theta = self._theta()[None, :]
            out = []
            while len(out) < self.n_bootstrap:
                idx = rng.integers(0, y.size, y.size)
                if w[idx].sum() > 0:
                    fit = self._optimize(self._take(Z, idx), y[idx], w[idx], theta, free,
                                         transforms, lower, upper, None)
                    out.append(fit.theta)
            self._boot = np.array(out)
        return self._boot
