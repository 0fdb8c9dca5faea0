"""Two-stage mixture predictors: a regression per revealed size, then extrapolation in the size.

Stage 1 fits, at every revealed size :math:`N_k`, a model linear in its parameters,

.. math::  m(p, N_k) \\approx c_k + \\phi(p, N_k)^\\top \\beta_k,

by ridge regression over the measured mixtures (penalty chosen by leave-one-out error, unless
given). The features :math:`\\phi` are the subclass's: OT terms for :class:`~datamix.predict.OTPredictor`,
polynomials of the ratios for :class:`~datamix.predict.RatioPolynomial`.

Stage 2 predicts at any size :math:`N` from the stage-1 predictions :math:`m_k(p)`:

* ``"two_point"`` — the Projektor rule, linear in :math:`\\log N` through the two bracketing sizes
  (beyond the revealed range, the two largest :math:`n_0 < n_1`):
  :math:`m(N) = [\\ln(N/n_0)\\, m_1 - \\ln(N/n_1)\\, m_0] / \\ln(n_1/n_0)`;
* ``"logit"`` — the same rule on :math:`z = \\operatorname{logit}((m - lo) / (hi - lo))`,
  with ``metric_range = (lo, hi)``, mapped back: predictions stay inside the range by
  construction (the linear rule overshoots an accuracy of 1 when it extrapolates far). Measured on
  the bundled digits (``benchmarks/ot_predictor.py``): at 4x the largest revealed size it is as good
  as the linear rule or a little worse, at 8x and 16x clearly better;
* ``"power_law"`` — beyond the revealed range, a :class:`~datamix.laws.PowerLaw`
  :math:`e = c + a N^{-b}` fitted per mixture to the error :math:`e = 1 - m` (accuracy) or to the
  loss, over all revealed sizes (three or more); inside it, the linear rule;
* ``"auto"`` picks the rule with the smallest error in a held-out check: every rule extrapolates
  from the smaller sizes to the largest revealed size, where the measured mixtures are known. The
  power law can only be checked with four or more revealed sizes, the logit rule only with a
  ``metric_range``. With fewer than three sizes nothing is checked and ``"auto"`` keeps ``"logit"``
  (``"two_point"`` without a ``metric_range``), the rule measured better far from the revealed sizes.
  The check runs whatever the rule (``extrapolation_scores_``); only ``"auto"`` acts on it.

Below the smallest size the two smallest sizes are extrapolated the same way.

Gradients are taken along the simplex: ``gradient(p, N)`` returns :math:`g` with
:math:`\\sum_i d_i g_i` the derivative of the prediction in any direction :math:`d`,
:math:`\\sum_i d_i = 0`, normalised by :math:`\\sum_i p_i g_i = 0`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from datamix.predict._regression import fit_ridge
from datamix.predict._simplex import check_ratios

__all__ = ["TwoStagePredictor", "runs_frame", "ratio_columns", "RATIO_PREFIX"]

logger = logging.getLogger(__name__)

EXTRAPOLATIONS = ("auto", "two_point", "logit", "power_law")
_LOGIT_MARGIN = 1e-4  # stage-1 values are kept this share of metric_range inside it before the logit
#: prefix of the ratio columns of a runs table (``p_<source>``)
RATIO_PREFIX = "p_"
_MAX_CHECK = 24  # mixtures used by the held-out extrapolation check



def ratio_columns(names) -> list[str]:
    """Column names of the ratios of sources ``names`` in a runs table: ``p_<name>``."""
    return [f"{RATIO_PREFIX}{n}" for n in names]

def runs_frame(runs, names: list[str], metric: str) -> pd.DataFrame:
    """The rows of ``runs`` that mix exactly the sources ``names``: columns p_<name>..., size, y.

    Parameters
    ----------
    runs : DataFrame, RunsTable, str or Path
        A runs table (see :mod:`datamix.proxy.runs`).
    names : list of str
    metric : str
        The column modelled (e.g. ``"metric"`` or ``"loss"``).
    """
    if isinstance(runs, (str, Path)):
        from datamix.proxy.runs import RunsTable

        runs = RunsTable(runs)
    if hasattr(runs, "read") and not isinstance(runs, pd.DataFrame):
        runs = runs.read()
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"runs must be a DataFrame, a RunsTable or a path, got {type(runs).__name__}")
    cols = ratio_columns(names)
    missing = [c for c in cols + ["size", metric] if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lack column(s) {missing}; a runs table has p_<source> per source, "
                         f"'size' and the metric column (got {list(runs.columns)})")
    others = [c for c in runs.columns if c.startswith(RATIO_PREFIX) and c not in cols]
    P = runs[cols].to_numpy(dtype=np.float64)
    keep = np.isfinite(P).all(axis=1) & np.isfinite(runs[metric].to_numpy(dtype=np.float64))
    if others:
        keep &= ~(runs[others].fillna(0).to_numpy(dtype=np.float64) > 0).any(axis=1)
    df = runs.loc[keep, cols + ["size"]].copy()
    df["y"] = runs.loc[keep, metric].astype(float)
    if df.empty:
        raise ValueError(f"runs hold no finite {metric!r} for mixtures of exactly {names}")
    check_ratios(df[cols].to_numpy(), names)
    return df.reset_index(drop=True)


def _two_point(sizes: np.ndarray, N: float) -> tuple[int, float, float]:
    """Index j and weights of the two-point rule in log N: value(N) = c0 · v[j-1] + c1 · v[j].

    j brackets N (the two largest or smallest sizes outside the range); c0 + c1 = 1.
    """
    j = int(np.clip(np.searchsorted(sizes, N), 1, len(sizes) - 1))
    n0, n1 = sizes[j - 1], sizes[j]
    span = np.log(n1 / n0)
    return j, float(-np.log(N / n1) / span), float(np.log(N / n0) / span)


class TwoStagePredictor(BaseEstimator):
    """Base of the mixture predictors; subclasses define the stage-1 features.

    Subclasses implement ``_prepare(names, data)`` (called once in ``fit``),
    ``_design(P, N) -> Z`` of shape (n_mixtures, n_features), and ``_design_grad(p, N) -> J`` of
    shape (n_features, n_sources): a gradient of every feature with respect to the ratios (any
    representative; it is projected on the simplex here).
    """

    # -- hooks --------------------------------------------------------------------------------------
    def _prepare(self, names, data) -> None:
        pass

    def _design(self, P: np.ndarray, N: int) -> np.ndarray:
        raise NotImplementedError

    def _design_grad(self, p: np.ndarray, N: int) -> np.ndarray:
        raise NotImplementedError

    def _check_params(self) -> None:
        if self.extrapolation not in EXTRAPOLATIONS:
            raise ValueError(f"extrapolation={self.extrapolation!r}; choose one of {EXTRAPOLATIONS}")
        if self.extrapolation == "logit" and self.metric_range is None:
            raise ValueError("extrapolation='logit' needs the metric's bounds (metric_range=(low, high)); "
                             "for an unbounded metric such as a loss use 'two_point' or 'power_law'")
        if not (self.alpha == "auto" or (np.isscalar(self.alpha) and float(self.alpha) >= 0)):
            raise ValueError(f"alpha={self.alpha!r} must be 'auto' or a number >= 0")
        if not (isinstance(self.n_bootstrap, (int, np.integer)) and self.n_bootstrap >= 2):
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r} must be an integer >= 2")
        if not isinstance(self.metric, str):
            raise ValueError(f"metric={self.metric!r} must be the name of a runs-table column")
        if self.metric_range is not None:
            lo, hi = self.metric_range
            if not lo < hi:
                raise ValueError(f"metric_range={self.metric_range!r} must be (low, high) with low < high, or None")

    # -- contract -----------------------------------------------------------------------------------
    @property
    def greater_is_better(self) -> bool:
        """True unless the modelled column is a loss."""
        return "loss" not in self.metric

    def _parse_sources(self, sources) -> tuple[list[str], list | None]:
        """Source names, and (X, y) per source when the subclass needs data."""
        from datamix.data.sources import Source

        if isinstance(sources, dict):
            names = list(sources)
            data = [tuple(v) if v is not None else None for v in sources.values()]
        else:
            sources = list(sources)
            if all(isinstance(s, str) for s in sources):
                names, data = sources, None
            elif all(isinstance(s, Source) for s in sources):
                names = [s.name for s in sources]
                data = [(s.vectors(), s.labels) for s in sources] if self._needs_data else None
            else:
                raise TypeError("sources must be a list of Source, a list of names, or a dict name -> (X, y)")
        if not names:
            raise ValueError("need at least one source")
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if self._needs_data and data is None:
            raise ValueError(f"{type(self).__name__} needs each source's points: pass Sources or a dict name -> (X, y)")
        return names, data

    _needs_data = False

    def fit(self, sources, runs):
        """Fit stage 1 at every revealed size and choose the stage-2 rule.

        Parameters
        ----------
        sources : list of Source, dict of name -> (X, y), or list of names
            The sources mixed, in the order of the ratios (``sources_``).
        runs : DataFrame, RunsTable or path
            Measured mixtures: ``p_<name>`` per source, ``size`` and the ``metric`` column.

        Returns
        -------
        self
        """
        self._check_params()
        names, data = self._parse_sources(sources)
        df = runs_frame(runs, names, self.metric)
        cols = ratio_columns(names)
        available = sorted(int(s) for s in df["size"].unique())
        sizes = available if self.sizes is None else sorted(int(s) for s in self.sizes)
        lacking = [s for s in sizes if s not in available]
        if lacking:
            raise ValueError(f"sizes {lacking} have no runs; the runs hold sizes {available}")
        self._prepare(names, data)
        stage1, train = {}, {}
        for N in sizes:
            rows = df[df["size"] == N]
            P = rows[cols].to_numpy(dtype=np.float64)
            n_mix = len(np.unique(np.round(P, 9), axis=0))
            if n_mix < 2 or len(rows) < 3:
                raise ValueError(f"size {N}: {len(rows)} runs of {n_mix} mixtures; "
                                 "need at least 3 runs of 2 or more mixtures per size")
            Z = self._design(P, N)
            y = rows["y"].to_numpy()
            stage1[N] = fit_ridge(Z, y, alpha=self.alpha)
            train[N] = (P, Z, y)
        # fitted state is set only once everything above succeeded
        self.sources_ = names
        self.sizes_ = np.array(sizes)
        self.stage1_, self._train = stage1, train
        self.n_runs_ = int(sum(len(v[2]) for v in train.values()))
        self._laws, self._boot = {}, None
        self._choose_extrapolation()
        return self

    # -- stage 1 and 2 ------------------------------------------------------------------------------
    def _stage1(self, p: np.ndarray, N: int) -> float:
        return float(self.stage1_[N].predict(self._design(p[None, :], N))[0])

    def _stage1_grad(self, p: np.ndarray, N: int) -> np.ndarray:
        return self.stage1_[N].coef @ self._design_grad(p, N)

    def _to_error(self, m):
        return np.clip(1.0 - np.asarray(m), 1e-6, None) if self.greater_is_better else np.clip(m, 1e-9, None)

    def _from_error(self, e):
        return 1.0 - e if self.greater_is_better else e

    def _power_law(self, sizes: np.ndarray, values: np.ndarray):
        """A :class:`~datamix.laws.PowerLaw` fitted to the error (or loss) at the revealed sizes.

        Plain least squares on the log error (a handful of points: nothing for a robust loss to
        do), one L-BFGS start from the law's data-driven grid.
        """
        from sklearn.exceptions import ConvergenceWarning

        from datamix.laws.forms import PowerLaw

        law = PowerLaw(loss="linear", n_starts=1, tol=1e-9, max_iter=300)
        # One BLAS thread: on a busy machine L-BFGS-B's tiny BLAS calls otherwise spin worker
        # threads (measured 2.7 s per fit with the default threads under load, 0.07 s with one).
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            return law.fit(np.asarray(sizes, dtype=float), self._to_error(values))

    def _law_for(self, key, sizes, values):
        law = self._laws.get(key) if key is not None else None
        if law is None:
            law = self._power_law(sizes, values)
            if key is not None:
                self._laws[key] = law
        return law

    @staticmethod
    def _power_law_sensitivity(law, sizes: np.ndarray, N: float) -> np.ndarray:
        """d e(N) / d e_k of a least-squares power-law fit on log e (Gauss–Newton), shape (n_sizes,)."""
        a, b, c = (law.params_[k] for k in ("a", "b", "c"))

        def jac(n):
            n = np.atleast_1d(np.asarray(n, dtype=float))
            nb = n ** -b
            f = c + a * nb
            return np.column_stack([nb, -a * np.log(n) * nb, np.ones_like(n)]) / f[:, None], f

        J, f_k = jac(sizes)
        j_N, f_N = jac(N)
        dlog = j_N @ np.linalg.pinv(J)  # d log f(N) / d log e_k
        return (f_N[0] * dlog / f_k).ravel()

    def _combine(self, values: np.ndarray, sizes: np.ndarray, N: float, rule: str, key=None) -> float:
        """Stage 2: the prediction at N from stage-1 values at ``sizes`` (ascending)."""
        if len(sizes) == 1:
            if N != sizes[0]:
                raise ValueError(f"one revealed size ({sizes[0]}): predictions at other sizes need two or more")
            return float(values[0])
        hit = np.flatnonzero(sizes == N)
        if hit.size:
            return float(values[hit[0]])
        if N > sizes[-1] and rule == "power_law":
            if len(sizes) < 3:
                raise ValueError("the power-law rule needs three or more revealed sizes")
            law = self._law_for(key, sizes, values)
            return float(self._from_error(law.predict(np.array([float(N)]))[0]))
        j, c0, c1 = _two_point(sizes, N)
        if rule != "logit":
            return float(c0 * values[j - 1] + c1 * values[j])
        return float(self._from_logit(c0 * self._to_logit(values[j - 1]) + c1 * self._to_logit(values[j])))

    # the "logit" rule's map of the metric range onto the real line, its inverse and its slope
    def _to_logit(self, m):
        lo, hi = self.metric_range
        u = np.clip((np.asarray(m, dtype=float) - lo) / (hi - lo), _LOGIT_MARGIN, 1 - _LOGIT_MARGIN)
        return np.log(u) - np.log1p(-u)

    def _from_logit(self, z):
        lo, hi = self.metric_range
        return lo + (hi - lo) * expit(z)

    def _dm_dz(self, z):
        """d _from_logit / d z."""
        lo, hi = self.metric_range
        return (hi - lo) * expit(z) * expit(-z)

    def _logit_slope(self, m):
        """d logit / d m, zero where ``m`` was clipped into the range."""
        lo, hi = self.metric_range
        u = (np.asarray(m, dtype=float) - lo) / (hi - lo)
        inside = (u > _LOGIT_MARGIN) & (u < 1 - _LOGIT_MARGIN)
        u = np.clip(u, _LOGIT_MARGIN, 1 - _LOGIT_MARGIN)
        return np.where(inside, 1.0 / ((hi - lo) * u * (1 - u)), 0.0)

    def _choose_extrapolation(self) -> None:
        sizes = self.sizes_
        rules = ("logit", "two_point", "power_law") if self.metric_range is not None else ("two_point", "power_law")
        self.extrapolation_scores_ = {r: float("nan") for r in rules}
        if self.extrapolation == "power_law" and len(sizes) < 3:
            raise ValueError(f"extrapolation='power_law' needs three or more revealed sizes, got {sizes.tolist()}")
        self.extrapolation_ = rules[0] if self.extrapolation == "auto" else self.extrapolation
        if len(sizes) < 3:  # nothing to check: the two-point rules need two sizes below the held-out one
            return
        P_last, _, y_last = self._train[sizes[-1]]
        keys, inv = np.unique(np.round(P_last, 9), axis=0, return_inverse=True)
        measured = np.bincount(inv.ravel(), weights=y_last) / np.bincount(inv.ravel())
        pick = np.random.default_rng(self.seed).permutation(len(keys))[:_MAX_CHECK]
        checked = [r for r in rules if r != "power_law" or len(sizes) >= 4]
        errors = {r: [] for r in checked}
        for i in pick:
            vals = np.array([self._stage1(keys[i], N) for N in sizes[:-1]])
            for r in checked:
                errors[r].append(abs(self._combine(vals, sizes[:-1], sizes[-1], r) - measured[i]))
        self.extrapolation_scores_.update({r: float(np.mean(v)) for r, v in errors.items()})
        if self.extrapolation == "auto":  # the first rule wins ties
            self.extrapolation_ = min(checked, key=lambda r: self.extrapolation_scores_[r])
        logger.info("held-out extrapolation check to N=%d: %s -> %s", sizes[-1], self.extrapolation_scores_,
                    self.extrapolation_)

    def _check_input(self, p, N) -> tuple[np.ndarray, float]:
        check_is_fitted(self)
        P = check_ratios(p, self.sources_)
        if not (np.isscalar(N) and np.isfinite(N) and N > 0):
            raise ValueError(f"N={N!r} must be a positive number (training-set size)")
        return P, float(N)

    def predict(self, p, N) -> float | np.ndarray:
        """Predicted metric of the mixture ``p`` trained on ``N`` samples.

        Parameters
        ----------
        p : array-like of shape (n_sources,) or (n_mixtures, n_sources), or dict name -> ratio
            Ratios in the order of ``sources_``, each row >= 0 and summing to 1.
        N : float
            Training-set size.

        Returns
        -------
        float, or ndarray of shape (n_mixtures,) for 2-D ``p``
        """
        P, N = self._check_input(p, N)
        if P.ndim == 2:
            return np.array([self.predict(q, N) for q in P])
        values = np.array([self._stage1(P, s) for s in self.sizes_])
        return self._clip(self._combine(values, self.sizes_, N, self.extrapolation_, key=tuple(np.round(P, 12))))

    def _clip(self, value):
        """Predictions outside ``metric_range`` (an accuracy above 1 from the log rule) are clipped."""
        if self.metric_range is None:
            return value
        return np.clip(value, *self.metric_range) if np.ndim(value) else float(np.clip(value, *self.metric_range))

    def gradient(self, p, N) -> np.ndarray:
        """Gradient of :meth:`predict` along the simplex, shape (n_sources,); see the module notes.

        It is the gradient of the unclipped prediction (``metric_range`` is not applied).
        """
        P, N = self._check_input(p, N)
        if P.ndim != 1:
            raise ValueError("gradient takes one mixture (a 1-D p)")
        sizes = self.sizes_
        grads = np.array([self._stage1_grad(P, s) for s in sizes])
        values = np.array([self._stage1(P, s) for s in sizes])
        if len(sizes) == 1 or N in sizes:
            g = grads[0] if len(sizes) == 1 else grads[int(np.flatnonzero(sizes == N)[0])]
        elif N > sizes[-1] and self.extrapolation_ == "power_law":
            # chain rule through the law fitted to this mixture (Gauss–Newton sensitivity of the fit)
            law = self._law_for(tuple(np.round(P, 12)), sizes, values)
            g = self._power_law_sensitivity(law, sizes, N) @ grads
        else:
            j, c0, c1 = _two_point(sizes, N)
            if self.extrapolation_ == "logit":  # chain rule through the logit of each value and back
                slope = self._logit_slope(values)
                g = self._dm_dz(c0 * self._to_logit(values[j - 1]) + c1 * self._to_logit(values[j])) * (
                    c0 * slope[j - 1] * grads[j - 1] + c1 * slope[j] * grads[j])
            else:
                g = c0 * grads[j - 1] + c1 * grads[j]
        return g - P @ g

    def size_derivative(self, p, N) -> float:
        """d predict(p, N) / d N (unclipped): the slope of stage 2 in the size."""
        P, N = self._check_input(p, N)
        sizes = self.sizes_
        if len(sizes) == 1:
            return 0.0
        values = np.array([self._stage1(P, s) for s in sizes])
        if N > sizes[-1] and self.extrapolation_ == "power_law":
            law = self._law_for(tuple(np.round(P, 12)), sizes, values)
            a, b = law.params_["a"], law.params_["b"]
            de = -a * b * N ** (-b - 1)
            return float(-de if self.greater_is_better else de)
        j, c0, c1 = _two_point(sizes, N)
        per_log_size = N * np.log(sizes[j] / sizes[j - 1])
        if self.extrapolation_ == "logit":
            z0, z1 = self._to_logit(values[j - 1]), self._to_logit(values[j])
            return float(self._dm_dz(c0 * z0 + c1 * z1) * (z1 - z0) / per_log_size)
        return float((values[j] - values[j - 1]) / per_log_size)

    # -- intervals ----------------------------------------------------------------------------------
    def _bootstrap(self) -> list[dict]:
        """Stage-1 refits on mixtures resampled with replacement (the same draw at every size)."""
        if self._boot is None:
            rng = np.random.default_rng(self.seed)
            keys = np.unique(np.concatenate([np.round(v[0], 9) for v in self._train.values()]), axis=0)
            ids = {N: np.array([np.flatnonzero((keys == r).all(axis=1))[0] for r in np.round(v[0], 9)])
                   for N, v in self._train.items()}
            self._boot = []
            for _ in range(self.n_bootstrap):
                counts = np.bincount(rng.integers(0, len(keys), len(keys)), minlength=len(keys))
                fits = {}
                for N, (P, Z, y) in self._train.items():
                    rep = counts[ids[N]]
                    if (rep > 0).sum() < 2:  # degenerate resample: keep the full fit
                        fits[N] = self.stage1_[N]
                        continue
                    idx = np.repeat(np.arange(len(y)), rep)
                    fits[N] = fit_ridge(Z[idx], y[idx], alpha=self.stage1_[N].alpha)
                self._boot.append(fits)
        return self._boot

    @property
    def calibrated_size_(self) -> float:
        """The largest size whose interval rests on a measured error: the largest revealed size
        times the step the held-out size check extrapolated (the largest size predicted from the
        smaller ones, ``sizes_[-1] / sizes_[-2]``, with three or more sizes; no step with fewer)."""
        s = self.sizes_
        return float(s[-1] * (s[-1] / s[-2] if len(s) >= 3 else 1.0))

    def calibrated(self, p, N) -> bool:
        """Whether :meth:`predict_interval` at size ``N`` rests on a measured error (``N`` up to
        :attr:`calibrated_size_`); farther out the interval holds the fit's spread at the revealed
        sizes but nothing measured the extrapolation's error."""
        return bool(self._check_input(p, N)[1] <= self.calibrated_size_ * (1 + 1e-9))

    def predict_interval(self, p, N, level: float = 0.9) -> tuple[float, float]:
        r"""Prediction interval of one new measurement of mixture ``p`` at size ``N``.

        Percentiles of bootstrap predictions (stage 1 refitted on resampled mixtures, ``n_bootstrap``
        times, then stage 2) plus a residual of the nearest revealed size (the largest when
        extrapolating; scaled by :math:`\sqrt{n / (n - \mathrm{dof})}`), drawn at random: the
        interval covers the fit's uncertainty and the measurement noise of one training. Widened
        to contain :meth:`predict` (with few refits the percentiles can miss it).

        Returns
        -------
        lo, hi : float
        """
        P, N = self._check_input(p, N)
        if not 0 < level < 1:
            raise ValueError(f"level={level!r} must be in (0, 1)")
        if P.ndim != 1:
            raise ValueError("predict_interval takes one mixture (a 1-D p)")
        rng = np.random.default_rng(self.seed + 1)
        near = self.stage1_[self.sizes_[int(np.argmin(np.abs(np.log(self.sizes_ / N))))]]
        n = len(near.residuals)
        # in-sample residuals inflated for the degrees of freedom used: the measurement noise
        residuals = near.residuals * np.sqrt(n / max(n - near.dof, 1.0))
        Z = {s: self._design(P[None, :], s) for s in self.sizes_}
        preds = []
        for fits in self._bootstrap():
            values = np.array([fits[s].predict(Z[s])[0] for s in self.sizes_])
            preds.append(self._combine(values, self.sizes_, N, self.extrapolation_) + rng.choice(residuals))
        lo, hi = np.quantile(preds, [(1 - level) / 2, (1 + level) / 2])
        point = float(self.predict(P, N))
        return self._clip(min(float(lo), point)), self._clip(max(float(hi), point))

    def loo_predictions(self) -> pd.DataFrame:
        """Leave-one-out stage-1 predictions of every training run: columns size, measured, predicted."""
        check_is_fitted(self)
        rows = []
        for N, (P, Z, y) in self._train.items():
            fit = self.stage1_[N]
            for i in range(len(y)):
                rows.append({"size": int(N), **{f"{RATIO_PREFIX}{n}": P[i, j] for j, n in enumerate(self.sources_)},
                             "measured": y[i], "predicted": y[i] - fit.loo_residuals[i]})
        return pd.DataFrame(rows)
