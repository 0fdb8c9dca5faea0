"""Data mixing laws (Ye et al. 2024): loss of a target domain as a function of mixture proportions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._validation import as_target, as_weights, check_level, check_number
from .base import Law, calibrated_interval, fit_residuals, relative_error


def mixing_law(R: np.ndarray, c: float, k: float, t: np.ndarray) -> np.ndarray:
    """:math:`L = c + k \\exp(\\sum_j t_j r_j)` for mixtures ``R`` of shape (n_samples, n_domains)."""
    return c + k * np.exp(np.asarray(R) @ np.asarray(t))


class MixingLaw(Law):
    """Mixing law of one target domain: :math:`L = c + k \\exp(\\sum_j t_j r_j)`.

    X holds the mixture proportions ``r_1..r_k`` (non-negative), as a 2-D array or a DataFrame whose
    columns (all of them, in order) are the training domains. ``c, k > 0`` are fitted in log space,
    ``t_j`` linearly. Starts: for a grid of ``c`` below ``min(y)``, ``log k`` and ``t`` by least
    squares of ``log(y - c)`` on the proportions.

    Parameters
    ----------
    n_components : int, default=1
        Number of implicit validation domains (Ye et al. 2024, section on multiple validation
        domains): :math:`L = c + \\sum_{i=1}^{K} k_i \\exp(\\sum_j t_{ij} r_j)`. With ``K > 1`` the
        parameters are ``c``, ``k[i]`` and ``t_j[i]``; starts split the ``K = 1`` fit with seeded
        perturbations.
    max_iter : int, default=5000
        L-BFGS-B iterations per start (more than the other laws: with many domains the Huber fit is
        large and non-smooth and converges slowly).
    **kwargs
        Other fit options of :class:`~datamix.laws.base.Law`.

    Notes
    -----
    Proportions that sum to one make ``log k`` and a common shift of all ``t_j`` interchangeable;
    predictions and differences ``t_i - t_j`` are identified, the individual values are not.
    With ``K = 1`` the prediction is monotone in one linear index ``t . r``, which caps how well it can
    rank mixtures whose effect is not of that shape (see the RegMix benchmark).

    References
    ----------
    Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language Modeling
    Performance".
    """

    column_domain = "nonnegative"

    def __init__(
        self, *, n_components=1, loss="huber", f_scale=1e-3, log_target=True, bounds=None, n_starts=None,
        max_iter=5000, tol=1e-12, n_bootstrap=100, seed=0,
    ):
        super().__init__(loss=loss, f_scale=f_scale, log_target=log_target, bounds=bounds, n_starts=n_starts,
                         max_iter=max_iter, tol=tol, n_bootstrap=n_bootstrap, seed=seed)
        self.n_components = n_components

    def _validate_hyper(self):
        check_number(self.n_components, "n_components", low=1, integer=True)

    def _design(self, X, *, reset):
        if reset:
            if isinstance(X, pd.DataFrame):
                self.feature_names_in_ = np.asarray(X.columns, dtype=object)
                self.n_features_in_ = X.shape[1]
            else:
                A = np.asarray(X, dtype=float) if not sp.issparse(X) else X
                if A.ndim != 2:
                    raise ValueError(f"X must be 2-D (n_samples, n_domains) for MixingLaw; got shape {A.shape}.")
                if A.shape[1] == 0:
                    raise ValueError(f"0 feature(s) (shape={A.shape}) while a minimum of 1 is required.")
                self.n_features_in_ = A.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
        return super()._design(X, reset=False)

    def _columns(self):
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return tuple(names)
        return tuple(f"r_{j + 1}" for j in range(self.n_features_in_))

    def _init_from_params(self, params):
        t_names = [name for name in params if name.startswith("t_")]
        self.n_features_in_ = len({name.split("[")[0] for name in t_names})

    def _spec(self):
        m, K = self.n_features_in_, self.n_components
        spec = [("c", "log", (0.0, np.inf))]
        for i in range(K):
            tag = "" if K == 1 else f"[{i + 1}]"
            spec.append((f"k{tag}", "log", (0.0, np.inf)))
            spec += [(f"t_{j + 1}{tag}", "linear", (-100.0, 100.0)) for j in range(m)]
        return spec

    def _model(self, theta, Z, jac):
        m = Z.shape[1]
        comps = theta[1:].reshape(self.n_components, m + 1)       # rows: (k_i, t_i1..t_im)
        ez = np.exp(np.clip(Z @ comps[:, 1:].T, -700, 700))       # (n_samples, K)
        pred = theta[0] + ez @ comps[:, 0]
        if not jac:
            return pred, None
        blocks = [np.column_stack([ez[:, i], (comps[i, 0] * ez[:, i])[:, None] * Z]) for i in range(len(comps))]
        return pred, np.column_stack([np.ones(len(Z))] + blocks)

    def _starts(self, Z, y):
        M = np.column_stack([np.ones(len(Z)), Z])
        rows = []
        for frac in (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.98):
            c = max(frac * y.min(), 1e-6 * y.min())
            coef = np.linalg.lstsq(M, np.log(y - c), rcond=None)[0]
            rows.append(np.concatenate([[c, np.exp(coef[0])], coef[1:]]))
        if self.n_components == 1:
            return np.array(rows)
        single = clone(self).set_params(n_components=1, n_bootstrap=2).fit(Z, y).params_
        c, k, t = single["c"], single["k"], np.array([single[f"t_{j + 1}"] for j in range(Z.shape[1])])
        rng = np.random.default_rng(self.seed)
        scale = max(np.std(t), 1.0)
        starts = []
        for spread in (0.3, 1.0, 0.3, 1.0):
            comps = [np.r_[k / self.n_components, t + spread * scale * rng.standard_normal(t.size)]
                     for _ in range(self.n_components)]
            starts.append(np.concatenate([[c]] + comps))
        return np.array(starts)


class MultiDomainMixingLaw(RegressorMixin, BaseEstimator):
    """One :class:`MixingLaw` per target domain, and their weighted sum.

    .. math:: L(r) = \\sum_d w_d \\big(c_d + k_d \\exp(\\sum_j t_{dj} r_j)\\big)

    Parameters
    ----------
    law : MixingLaw, default=None
        Template cloned for every domain (fit options); ``None`` uses ``MixingLaw()``.
    weights : dict or array-like of shape (n_domains,), default=None
        Weight of each target domain in the sum; ``None`` gives equal weights ``1 / n_domains``.

    Attributes
    ----------
    laws_ : dict of str to MixingLaw
        Fitted law per target domain.
    domains_ : list of str
        Target domain names (the columns of ``y``, or ``"y_1"...`` for arrays).
    weights_ : ndarray of shape (n_domains,)
    params_ : dict of str to float
        ``"<domain>:<param>"`` for every domain law.
    """

    def __init__(self, *, law=None, weights=None):
        self.law = law
        self.weights = weights

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        template = MixingLaw() if self.law is None else self.law
        if isinstance(template, MixingLaw):
            tags.input_tags = template.__sklearn_tags__().input_tags
            tags.target_tags.positive_only = bool(template.log_target)
        tags.regressor_tags.poor_score = True  # score() is a negative relative error, at most 0
        return tags

    def fit(self, X, y, sample_weight=None):
        """Fit one law per target domain.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_train_domains)
            Mixture proportions.
        y : DataFrame or array-like of shape (n_samples, n_domains)
            Loss on each target domain (a DataFrame names the domains).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        template = MixingLaw() if self.law is None else self.law
        if not isinstance(template, MixingLaw):
            raise ValueError(f"law must be a MixingLaw; got {type(template).__name__}.")
        if y is None:
            raise ValueError("MultiDomainMixingLaw requires y to be passed, but the target y is None.")
        if isinstance(y, pd.DataFrame):
            domains, Yv = [str(c) for c in y.columns], y.to_numpy(dtype=float)
        else:
            Yv = np.asarray(y, dtype=float)
            Yv = Yv.reshape(-1, 1) if Yv.ndim == 1 else Yv
            domains = [f"y_{j + 1}" for j in range(Yv.shape[1])]
        self.weights_ = self._resolve_weights(domains)
        self.domains_ = domains
        self.laws_ = {d: clone(template).fit(X, Yv[:, j], sample_weight) for j, d in enumerate(domains)}
        self.n_features_in_ = self.laws_[domains[0]].n_features_in_
        self.params_ = {f"{d}:{k}": v for d, law in self.laws_.items() for k, v in law.params_.items()}
        return self

    def predict_domains(self, X) -> np.ndarray:
        """Per-domain predictions, shape (n_samples, n_domains), columns in ``domains_`` order."""
        check_is_fitted(self)
        return np.column_stack([self.laws_[d].predict(X) for d in self.domains_])

    def predict(self, X) -> np.ndarray:
        """Weighted sum of the domain predictions, shape (n_samples,)."""
        return self.predict_domains(X) @ self.weights_

    def predict_interval(self, X, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Interval of the weighted sum: the domain laws' bootstrap refits summed replicate by
        replicate (they share ``seed`` and training rows, so replicates resample the same rows),
        spread by the weighted sum's own residuals on the training rows
        (:func:`~datamix.laws.base.calibrated_interval`)."""
        check_is_fitted(self)
        check_level(level)
        total, fitted, observed, n_params = 0.0, 0.0, 0.0, 0
        for d, w in zip(self.domains_, self.weights_):
            law = self.laws_[d]
            Z = law._design(X, reset=False)
            total = total + w * np.array([law._model(t, Z, False)[0] for t in law._bootstrap_thetas()])
            Z_tr, y_tr, _, free = law._train
            fitted = fitted + w * law._model(law._theta(), Z_tr, False)[0]
            observed, n_params = observed + w * y_tr, n_params + int(free.sum())
        r, multiplicative = fit_residuals(observed, fitted, n_params)
        return calibrated_interval(total, self.predict(X), r, level, multiplicative=multiplicative)

    def score(self, X, y, sample_weight=None) -> float:
        """Negative mean absolute relative error of the weighted sum against ``y @ weights_`` (y per
        domain); higher is better, as in scikit-learn."""
        y_pred = self.predict(X)
        Yv = np.asarray(y, dtype=float).reshape(len(y_pred), -1)
        y = as_target(Yv @ self.weights_, len(y_pred), log_target=False)
        return -float(np.average(relative_error(y_pred, y), weights=as_weights(sample_weight, y.size)))

    def _resolve_weights(self, domains):
        if self.weights is None:
            return np.full(len(domains), 1 / len(domains))
        if isinstance(self.weights, dict):
            missing = [d for d in domains if d not in self.weights]
            unknown = sorted(set(self.weights) - set(domains))
            if missing or unknown:
                raise ValueError(f"weights: missing domains {missing}, unknown {unknown}; domains are {domains}.")
            w = np.array([self.weights[d] for d in domains], dtype=float)
        else:
            w = np.asarray(self.weights, dtype=float)
        if w.shape != (len(domains),) or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be {len(domains)} finite numbers (one per domain); got {self.weights!r}.")
        return w

