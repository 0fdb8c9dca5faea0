"""Scaling laws fitted on a table of training runs, chosen by held-out error, and the plans they give.

Two kinds of table (see the runs pipeline): **pools** — rows (pool, samples seen ``n``, unique
samples ``S``, error), candidates :class:`~datamix.laws.QualityQuantity` with every parameter free
(``qqt``) and in the reference code's form with the shared ``a``, ``d`` held at given values
(``qqt_reference``); **scaling** — rows (parameters ``N``, tokens seen ``D``, unique tokens ``U``,
loss), candidates :class:`~datamix.laws.DataConstrained` and :class:`~datamix.laws.Chinchilla`.
:func:`score_laws` scores candidates by k-fold cross-validation and by extrapolation (fitted on the
smaller runs, judged on the larger); :func:`compute_optimal` chooses N and D for a compute budget.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from datamix.laws import Chinchilla, DataConstrained, QualityQuantity, extrapolation_split

__all__ = ["KIND_LAWS", "GivenLaw", "LawScores", "make_law", "n_free", "score_laws", "compute_optimal"]

#: candidates of each kind of table, in the order ties are broken
KIND_LAWS = {"pools": ("qqt", "qqt_reference"), "scaling": ("data_constrained", "chinchilla")}


class GivenLaw(RegressorMixin, BaseEstimator):
    """A law whose parameters are all given: ``fit`` keeps them (the candidate a law with free
    parameters is compared against, e.g. Chinchilla with the base a data-constrained fit holds).

    Parameters
    ----------
    law : Law class
    params : dict of str to float
    """

    def __init__(self, *, law=Chinchilla, params=None):
        self.law = law
        self.params = params

    def fit(self, X, y=None):
        """Nothing to fit: the law with ``params``."""
        self.law_ = self.law.from_params(self.params)
        self.params_ = self.law_.params_
        return self

    def predict(self, X) -> np.ndarray:
        """The law's prediction, shape (n_samples,)."""
        return self.law_.predict(X)


def make_law(name: str, *, shared: Mapping[str, float] | None = None, base: Mapping[str, float] | None = None,
             seed: int = 0):
    """An unfitted candidate of :data:`KIND_LAWS`: ``shared`` holds ``qqt_reference``'s ``a``, ``d``;
    ``base`` the Chinchilla part (``data_constrained`` then fits R_D*, R_N* only and ``chinchilla``
    is the base itself)."""
    if name == "qqt":
        return QualityQuantity(n_starts=6, seed=seed)
    if name == "qqt_reference":
        return QualityQuantity(form="reference", shared=dict(shared or {}), n_starts=6, seed=seed)
    if name == "data_constrained":
        return DataConstrained(base=None if base is None else dict(base), seed=seed)
    if name == "chinchilla":
        return Chinchilla(seed=seed) if base is None else GivenLaw(law=Chinchilla, params=dict(base))
    raise ValueError(f"unknown law {name!r}; choose one of {', '.join(n for v in KIND_LAWS.values() for n in v)}")


def n_free(name: str, *, n_pools: int = 0, shared: Mapping | None = None, base: Mapping | None = None) -> int:
    """Free parameters of a candidate of :func:`make_law` (a fit needs more runs than this)."""
    return {"qqt": 2 + 2 * n_pools, "qqt_reference": 2 - len(shared or {}) + 2 * n_pools,
            "data_constrained": 2 if base is not None else 7, "chinchilla": 0 if base is not None else 5}[name]


@dataclass(frozen=True)
class LawScores:
    """Result of :func:`score_laws`.

    Attributes
    ----------
    kfold : DataFrame
        One row per candidate: ``rel_error`` (mean absolute relative error of its held-out
        predictions), ``mae``, ``runs``.
    held_out : DataFrame
        Held-out prediction of every run by every candidate (one column each) and its ``fold``.
    scale : DataFrame or None
        Fitted on the runs below the split, judged on those above: ``rel_error``, ``mae``, ``runs``.
    scale_mask : ndarray of bool, shape (n_runs,) or None
        The runs fitted on in ``scale``.
    """

    kfold: pd.DataFrame
    held_out: pd.DataFrame
    scale: pd.DataFrame | None
    scale_mask: np.ndarray | None


def _errors(pred: np.ndarray, y: np.ndarray) -> dict:
    return {"rel_error": float(np.mean(np.abs(pred - y) / np.abs(y))), "mae": float(np.mean(np.abs(pred - y))),
            "runs": int(y.size)}


def _frame(rows: dict) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index").astype({"runs": int})


def score_laws(names: Sequence[str], X: pd.DataFrame, y, *, make: Callable[[str], object], folds: int = 5,
               scale=None, seed: int = 0) -> LawScores:
    """Held-out errors of every candidate: k-fold, and (with ``scale``) by extrapolation.

    Parameters
    ----------
    names : sequence of str
        Candidates, made unfitted by ``make(name)``.
    X : DataFrame of shape (n_runs, n_columns)
        The laws' columns.
    y : array-like of shape (n_runs,)
    make : callable
    folds : int, default=5
        KFold splits (shuffled with ``seed``).
    scale : array-like of shape (n_runs,), optional
        The size of each run (samples seen, parameters): fitted on the smallest 70%
        (:func:`~datamix.laws.extrapolation_split`), judged on the rest.
    seed : int, default=0

    Returns
    -------
    LawScores
    """
    y = np.asarray(y, dtype=np.float64)
    X = X.reset_index(drop=True)
    held = {c: np.empty(y.size) for c in names}
    fold_of = np.empty(y.size, dtype=int)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # best state kept; judged by held-out error
        for f, (tr, te) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(X)):
            fold_of[te] = f
            for c in names:
                held[c][te] = make(c).fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
        kfold = _frame({c: _errors(held[c], y) for c in names})
        out, mask = None, None
        if scale is not None:
            mask = extrapolation_split(np.asarray(scale, dtype=np.float64))
            out = _frame({c: _errors(make(c).fit(X[mask], y[mask]).predict(X[~mask]), y[~mask]) for c in names})
    held_out = pd.DataFrame(held)
    held_out["fold"] = fold_of
    return LawScores(kfold=kfold, held_out=held_out, scale=out, scale_mask=mask)


def compute_optimal(law, flops: float, unique: float, *, ratio_range=(1e-2, 1e5)) -> tuple[float, float, float]:
    """The model size N and tokens D with :math:`6 N D = C` that minimise the law's loss.

    .. math:: \\min_{N} L\\big(N, D = C / 6N, U\\big)

    searched over tokens per parameter D/N in ``ratio_range`` (a grid of 401 in log, then refined).

    Parameters
    ----------
    law : fitted law
        ``predict(X)`` of a DataFrame with columns ``N``, ``D``, ``U``.
    flops : float
        Compute budget C (FLOPs).
    unique : float
        Unique tokens available U (epochs = D / U).
    ratio_range : (float, float)

    Returns
    -------
    (N, D, predicted loss)

    Examples
    --------
    >>> law = Chinchilla.from_params({"E": 1.0, "A": 1.0, "B": 1.0, "alpha": 0.5, "beta": 0.5})
    >>> N, D, _ = compute_optimal(law, 6e18, 1e12)
    >>> round(N / 1e9, 3), round(D / 1e9, 3)  # equal exponents and scales: N = D = sqrt(C / 6)
    (1.0, 1.0)
    """
    def loss(log_r):
        r = np.exp(np.atleast_1d(log_r))
        N = np.sqrt(flops / (6 * r))
        return law.predict(pd.DataFrame({"N": N, "D": N * r, "U": np.full(N.shape, float(unique))}))

    grid = np.linspace(*np.log(ratio_range), 401)
    i = int(np.argmin(loss(grid)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(lambda t: float(loss(t)[0]), bounds=(lo, hi), method="bounded", options={"xatol": 1e-8})
    r = float(np.exp(res.x))
    N = float(np.sqrt(flops / (6 * r)))
    return N, N * r, float(res.fun)
