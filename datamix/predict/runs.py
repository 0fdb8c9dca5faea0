"""Mixture predictors fitted on a table of training runs, chosen by held-out error, and the top pick.

The candidates are scikit-learn regressors of the metric on the mixture weights ``X`` (shape
(n_runs, n_sources), rows on the simplex): :class:`~datamix.laws.MixingLaw` with one or two
components (Ye et al. 2024), gradient boosting (``HistGradientBoostingRegressor``, default settings:
RegMix's method, Liu et al. 2024), linear regression, and :class:`RankEnsemble` of the best law and
boosting. :func:`select_mixture_predictor` scores every candidate by k-fold cross-validation and
chooses two of them: the *ranker* (highest held-out Spearman, for predictions) and the *picker*
(a law, the simpler unless clearly beaten on held-out top-pick regret, for the plan). :func:`pick_mixture` optimises a fitted
picker over the simplex under per-source bounds by a large random sample of mixtures (RegMix's
search; it needs no gradient, so it serves boosting too).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from datamix.laws import MixingLaw

__all__ = ["CANDIDATES", "RankEnsemble", "MixtureSelection", "make_candidate", "min_runs",
           "select_mixture_predictor", "pick_mixture", "capped_simplex_rows"]

logger = logging.getLogger(__name__)

#: candidate predictors, in the order ties are broken (laws first: "pick like the law")
CANDIDATES = ("mixing1", "mixing2", "linear", "boosting", "ensemble")
#: gradient boosting's leaves hold >= 20 runs (scikit-learn's default): below 2 leaves' worth it
#: cannot split and predicts a constant
_BOOSTING_MIN_RUNS = 40


def _law(n_components: int, seed: int) -> MixingLaw:
    # one start (the best of the grid by cost): on RegMix's 512 x 17 tables it reaches the parameters
    # of all 7 starts in a seventh of the time; two components stop at 2000 iterations (their
    # held-out ranking and top picks equal those at 5000, in 1/3 of the time). n_bootstrap is
    # unused here: intervals come from held-out residuals
    return MixingLaw(n_components=n_components, n_starts=1, max_iter=5000 if n_components == 1 else 2000,
                     n_bootstrap=2, seed=seed)


def make_candidate(name: str, *, law: str = "mixing1", seed: int = 0):
    """An unfitted candidate predictor of :data:`CANDIDATES`; ``law`` is the ensemble's law member."""
    if name == "mixing1":
        return _law(1, seed)
    if name == "mixing2":
        return _law(2, seed)
    if name == "boosting":
        return HistGradientBoostingRegressor(random_state=seed)
    if name == "linear":
        return LinearRegression()
    if name == "ensemble":
        return RankEnsemble(estimators=[(law, make_candidate(law, seed=seed)),
                                        ("boosting", make_candidate("boosting", seed=seed))])
    raise ValueError(f"unknown predictor {name!r}; choose one of {', '.join(CANDIDATES)} (or auto)")


def min_runs(name: str, n_sources: int) -> int:
    """Fewest runs a candidate needs: more than its free parameters (laws, linear), or two leaves of
    gradient boosting."""
    need = {"mixing1": n_sources + 2, "mixing2": 2 * (n_sources + 1) + 2, "linear": n_sources + 1,
            "boosting": _BOOSTING_MIN_RUNS}
    if name == "ensemble":
        return max(need["mixing1"], need["boosting"])
    return need[name]


class RankEnsemble(RegressorMixin, BaseEstimator):
    """Average of the members' standardised predictions, on the first member's scale.

    .. math:: \\hat y(x) = \\mu_1 + \\sigma_1 \\frac{1}{M} \\sum_m \\frac{f_m(x) - \\mu_m}{\\sigma_m}

    with :math:`\\mu_m, \\sigma_m` the mean and standard deviation of member m's predictions on the
    training runs. Standardising first keeps a member whose predictions are compressed (boosting
    shrinks towards the mean) from counting less in the ranking; the first member's scale puts the
    result back in metric units.

    Parameters
    ----------
    estimators : list of (str, estimator)
        Members, the first giving the scale (and, in the runs pipeline, the top pick).

    Attributes
    ----------
    estimators_ : list of (str, fitted estimator)
    center_, scale_ : ndarray of shape (n_members,)
    """

    def __init__(self, *, estimators=None):
        self.estimators = estimators

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike):
        """Fit clones of the members on ``X`` (n_runs, n_sources) and ``y`` (n_runs,)."""
        if not self.estimators:
            raise ValueError("RankEnsemble needs estimators=[(name, estimator), ...], got none")
        fitted = [(name, clone(est).fit(X, y)) for name, est in self.estimators]
        return self._set_members(fitted, X)

    def _set_members(self, fitted: list, X) -> "RankEnsemble":
        """Use already fitted members (fitted on ``X``): what cross-validation reuses."""
        self.estimators_ = fitted
        train = np.column_stack([est.predict(X) for _, est in fitted])
        self.center_ = train.mean(axis=0)
        self.scale_ = np.where(train.std(axis=0) > 0, train.std(axis=0), 1.0)
        return self

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """Predictions, shape (n_samples,), in the first member's units."""
        check_is_fitted(self)
        z = (np.column_stack([est.predict(X) for _, est in self.estimators_]) - self.center_) / self.scale_
        return self.center_[0] + self.scale_[0] * z.mean(axis=1)


@dataclass(frozen=True)
class MixtureSelection:
    """Result of :func:`select_mixture_predictor`.

    Attributes
    ----------
    ranker : str
        Candidate with the highest held-out Spearman: it predicts.
    picker : str
        The law that chooses the mixture: ``mixing1`` unless ``mixing2``'s top picks had a clearly
        lower held-out regret (see :func:`_simplest_law`); a flexible learner's optimum over the
        simplex is an artefact of its pieces (boosting is piecewise constant), a law's follows its
        smooth form ("rank like the best learner, pick like the law"). With a named ``law``, that
        one (for the ensemble, its law member); linear regression when no law fits the runs.
    law : str
        The ensemble's law member (the law with the higher held-out Spearman).
    scores : DataFrame
        One row per candidate: ``spearman`` (mean over folds), ``mae``, ``rel_error`` (mean absolute
        relative error), ``regret`` (mean over folds of the measured metric of the fold's top pick
        minus the fold's best, >= 0), ``min_runs``.
    held_out : DataFrame
        Held-out prediction of every run by every candidate, one column per candidate, plus ``fold``.
    """

    ranker: str
    picker: str
    law: str
    scores: pd.DataFrame
    held_out: pd.DataFrame


def _fold_scores(pred: np.ndarray, y: np.ndarray, folds: np.ndarray, sign: float) -> dict:
    rho, regret = [], []
    for f in np.unique(folds):
        m = folds == f
        rho.append(spearmanr(pred[m], y[m])[0] if np.ptp(pred[m]) > 0 else 0.0)
        regret.append(float(np.max(sign * y[m]) - sign * y[m][np.argmax(sign * pred[m])]))
    return {"spearman": float(np.nanmean(rho)), "mae": float(np.mean(np.abs(pred - y))),
            "rel_error": float(np.mean(np.abs(pred - y) / np.abs(y).clip(1e-12))),
            "regret": float(np.mean(regret)), "fold_regrets": regret}


def _simplest_law(scores: dict) -> str:
    """The picker: ``mixing1``, unless ``mixing2``'s top picks had a lower held-out regret by more
    than two standard errors of the fold-by-fold difference (the simpler law unless clearly beaten)."""
    if "mixing2" not in scores:
        return "mixing1"
    if "mixing1" not in scores:
        return "mixing2"
    d = np.array(scores["mixing1"]["fold_regrets"]) - np.array(scores["mixing2"]["fold_regrets"])
    return "mixing2" if d.mean() > 2 * d.std(ddof=1) / np.sqrt(d.size) else "mixing1"


def select_mixture_predictor(X: npt.ArrayLike, y: npt.ArrayLike, *, law: str = "auto", folds: int = 5,
                             greater_is_better: bool = False, seed: int = 0) -> MixtureSelection:
    """Score every candidate by k-fold cross-validation on the runs and choose the ranker and picker.

    Parameters
    ----------
    X : array-like of shape (n_runs, n_sources)
        Mixture weights (rows on the simplex).
    y : array-like of shape (n_runs,)
        The metric of each run (averaged over seeds).
    law : {"auto"} or a name of :data:`CANDIDATES`, default="auto"
        ``auto`` chooses among every candidate the runs are enough for; a name fixes both ranker
        and picker (its errors are still measured and reported).
    folds : int, default=5
        KFold splits (shuffled with ``seed``).
    greater_is_better : bool, default=False
        The metric's direction (loss: False); the top pick is the predicted best.
    seed : int, default=0

    Returns
    -------
    MixtureSelection

    Raises
    ------
    ValueError
        Fewer runs than the named predictor (or, for ``auto``, every candidate) needs, an unknown name.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = X.shape
    if law != "auto" and law not in CANDIDATES:
        raise ValueError(f"law={law!r}: choose auto or one of {', '.join(CANDIDATES)}")
    n_train = n - int(np.ceil(n / folds))  # the smallest training fold
    names = [c for c in (CANDIDATES if law == "auto" else (law,)) if min_runs(c, k) <= n_train]
    if law != "auto" and not names:
        raise ValueError(f"law={law}: {n} runs ({n_train} per training fold of {folds}) are fewer than the "
                         f"{min_runs(law, k)} it needs for {k} sources (its free parameters); measure more runs, "
                         "lower runs.folds or choose a smaller predictor")
    if not names:
        raise ValueError(f"{n} runs ({n_train} per training fold of {folds}) are fewer than any predictor needs "
                         f"for {k} sources (linear regression: {min_runs('linear', k)}); measure more runs")
    base = [c for c in names if c != "ensemble"] or ["mixing1", "boosting"]  # law=ensemble fits its members
    sign = 1.0 if greater_is_better else -1.0
    fold_of = np.empty(n, dtype=int)
    held = {c: np.empty(n) for c in base}
    fitted_folds = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # best state kept; judged by held-out error
        for f, (tr, te) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(X)):
            fold_of[te] = f
            models = {c: make_candidate(c, seed=seed).fit(X[tr], y[tr]) for c in base}
            for c, m in models.items():
                held[c][te] = m.predict(X[te])
            fitted_folds.append((tr, te, models))
    scores = {c: _fold_scores(held[c], y, fold_of, sign) for c in base}
    laws = [c for c in ("mixing1", "mixing2") if c in scores]
    member = max(laws, key=lambda c: scores[c]["spearman"]) if laws else "mixing1"
    if "ensemble" in names:
        held["ensemble"] = np.empty(n)
        for tr, te, models in fitted_folds:
            ens = RankEnsemble()._set_members([(member, models[member]), ("boosting", models["boosting"])], X[tr])
            held["ensemble"][te] = ens.predict(X[te])
        scores["ensemble"] = _fold_scores(held["ensemble"], y, fold_of, sign)
    table = pd.DataFrame(scores).T.loc[[c for c in CANDIDATES if c in scores]].drop(columns="fold_regrets")
    table = table.astype(float)
    table["min_runs"] = [min_runs(c, k) for c in table.index]
    if law == "auto":
        order = {c: i for i, c in enumerate(CANDIDATES)}
        ranker = min(table.index, key=lambda c: (-round(table.loc[c, "spearman"], 12), order[c]))
        laws = [c for c in ("mixing1", "mixing2") if c in scores]
        picker = _simplest_law(scores) if laws else min(table.index, key=lambda c: round(table.loc[c, "regret"], 12))
    else:
        ranker = law
        picker = member if law == "ensemble" else law
    logger.info("runs: held-out scores over %d folds:\n%s\nranker %s, picker %s", folds, table.round(4), ranker, picker)
    held_out = pd.DataFrame({c: held[c] for c in table.index})
    held_out["fold"] = fold_of
    return MixtureSelection(ranker=ranker, picker=picker, law=member, scores=table, held_out=held_out)


def capped_simplex_rows(X: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike, *, n_bisect: int = 60) -> np.ndarray:
    """Euclidean projection of each row of ``X`` (m, k) onto :math:`\\{p: \\sum p = 1, lo \\le p \\le hi\\}`.

    Bisection on the shift :math:`\\tau` of :math:`p = \\mathrm{clip}(x - \\tau, lo, hi)`, all rows at
    once (needs ``sum(lo) <= 1 <= sum(hi)``). For one vector,
    :func:`datamix.optimize._projection.project_capped_simplex` is exact.

    Examples
    --------
    >>> capped_simplex_rows([[2.0, 0.0]], [0.0, 0.0], [0.7, 1.0]).round(9).tolist()
    [[0.7, 0.3]]
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    a = (X - hi).min(axis=1) - 1.0  # every coordinate at hi: sum >= 1
    b = (X - lo).max(axis=1) + 1.0  # every coordinate at lo: sum <= 1
    for _ in range(n_bisect):
        tau = (a + b) / 2
        over = np.clip(X - tau[:, None], lo, hi).sum(axis=1) > 1
        a, b = np.where(over, tau, a), np.where(over, b, tau)
    return np.clip(X - ((a + b) / 2)[:, None], lo, hi)


def pick_mixture(estimator, lo: npt.ArrayLike, hi: npt.ArrayLike, *, greater_is_better: bool = False,
                 n_samples: int = 100_000, extra: npt.ArrayLike | None = None, seed: int = 0,
                 average_top: int = 1) -> tuple[np.ndarray, float]:
    """The mixture with the best prediction: the best of a large random sample of feasible
    mixtures, polished by moving mass between pairs of sources while the prediction improves; or,
    with ``average_top`` k > 1, the mean of the k best sampled mixtures (RegMix averages its top
    100 of 100,000: a mixture less tied to one predictor's optimum, which for a one-component law
    sits at a corner of the bounds), feasible since the set is convex.

    The sample: ``n_samples`` Dirichlet draws (half with concentration 1, uniform on the simplex,
    half with 0.2, mixtures of few sources), the ``extra`` rows (e.g. the measured mixtures) and the
    corners (each source as far as its bound allows), all projected onto the capped simplex
    ``lo <= p <= hi`` (:func:`capped_simplex_rows`).

    Parameters
    ----------
    estimator : fitted regressor
        ``predict(X)`` of mixtures (m, n_sources).
    lo, hi : array-like of shape (n_sources,)
        Per-source bounds of the ratios, ``sum(lo) <= 1 <= sum(hi)``.
    greater_is_better : bool, default=False
    n_samples : int, default=100_000
    extra : array-like of shape (m, n_sources), optional
    seed : int, default=0
    average_top : int, default=1

    Returns
    -------
    (ratios of shape (n_sources,), predicted metric)
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    k = lo.size
    rng = np.random.default_rng(seed)
    half = max(n_samples // 2, 1)
    parts = [rng.dirichlet(np.ones(k), half), rng.dirichlet(np.full(k, 0.2), half), np.eye(k)]
    if extra is not None:
        parts.append(np.atleast_2d(np.asarray(extra, dtype=np.float64)))
    P = capped_simplex_rows(np.vstack(parts), lo, hi)
    sign = 1.0 if greater_is_better else -1.0

    def score(rows):
        with threadpool_limits(1):
            v = sign * np.asarray(estimator.predict(rows), dtype=np.float64)
        return np.where(np.isfinite(v), v, -np.inf)

    values = score(P)
    if average_top > 1:
        p = P[np.argsort(-values, kind="stable")[:average_top]].mean(axis=0)
        return p, float(sign * score(p[None, :])[0])
    best = int(np.argmax(values))
    p, value = P[best], values[best]
    # polish: move mass between every pair of sources (all moves in one batch), halving the step
    # when none gains; exact at the corners of the bounds where linear-index laws have their optimum
    i, j = np.nonzero(~np.eye(k, dtype=bool))
    step = 0.05
    while step > 1e-7:
        delta = np.minimum(np.minimum(step, hi[i] - p[i]), p[j] - lo[j]).clip(0)
        moves = np.repeat(p[None, :], len(i), axis=0)
        moves[np.arange(len(i)), i] += delta
        moves[np.arange(len(i)), j] -= delta
        v = score(moves)
        m = int(np.argmax(v))
        if v[m] > value + 1e-12 * max(1.0, abs(value)):
            p, value = moves[m], v[m]
        else:
            step /= 2
    return p, float(sign * value)
