"""The feasible set of a mixture decision, checked once, with an exact projection onto it.

Decision variables (per source :math:`i`, with :math:`U_i` available unique samples and a compute
budget of :math:`T` samples seen): the ratio :math:`p_i` and the keep-fraction :math:`q_i` (share of
the source, ranked by quality, that is kept; for a priced source, the share of its offer bought).
Samples seen from source :math:`i` are :math:`p_i T`, passes over its kept samples
:math:`e_i = p_i T / (q_i U_i)`. Constraints:

* :math:`\\sum_i p_i = 1`, :math:`l_i \\le p_i \\le h_i` (``min_ratio``, ``max_ratio``);
* :math:`1/U_i \\le q_i \\le 1` (at least one sample kept, no more than available);
* :math:`p_i \\le a_i q_i`, :math:`a_i = E U_i / T` (``max_epochs`` :math:`E`);
* :math:`\\sum_i c_i q_i U_i \\le B - \\sum_i c_i` (``prices`` :math:`c_i`, ``budget`` :math:`B`; one
  sample of slack per priced source, so that rounding to whole samples keeps the budget).

All constraints are linear; :meth:`MixtureProblem.project` is the exact Euclidean projection onto
their intersection (see :mod:`datamix.optimize._projection`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from datamix.optimize._projection import project_mixture

__all__ = ["MixtureProblem", "check_constraints"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixtureProblem:
    """A validated, feasible mixture problem (build it with :func:`check_constraints`).

    Attributes
    ----------
    names : list of str
    tokens : float
        Samples seen (T).
    available : ndarray of shape (n_sources,)
        Unique samples per source (U).
    lo, hi : ndarray of shape (n_sources,)
        Ratio bounds, ``hi`` with the epoch bound of fixed keep-fractions folded in.
    max_epochs : float
        ``inf`` when unbounded.
    free : ndarray of bool, shape (n_sources,)
        Keep-fraction optimised (else fixed at ``q_fixed``).
    q_fixed : ndarray of shape (n_sources,)
    prices : ndarray of shape (n_sources,)
        0 for sources without a price.
    priced : ndarray of bool, shape (n_sources,)
    budget : float
        ``inf`` without a money budget.
    """

    names: list
    tokens: float
    available: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    max_epochs: float
    free: np.ndarray
    q_fixed: np.ndarray
    prices: np.ndarray
    priced: np.ndarray
    budget: float

    # -- derived ------------------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def q_min(self) -> np.ndarray:
        return np.where(self.free, 1.0 / self.available, self.q_fixed)

    @property
    def q_max(self) -> np.ndarray:
        return np.where(self.free, 1.0, self.q_fixed)

    @property
    def slope(self) -> np.ndarray:
        """a_i = E U_i / T (inf without an epoch limit): p_i <= a_i q_i."""
        if not math.isfinite(self.max_epochs):
            return np.full(self.k, np.inf)
        return self.max_epochs * self.available / self.tokens

    @property
    def money_weights(self) -> np.ndarray:
        """Money per unit of keep-fraction, c_i U_i, for priced sources that may be used."""
        if not math.isfinite(self.budget):
            return np.zeros(self.k)
        return np.where(self.priced & (self.hi > 0), self.prices * self.available, 0.0)

    @property
    def money_cap(self) -> float:
        """Budget of the continuous problem: B less one sample of every priced source that may be used."""
        if not math.isfinite(self.budget):
            return math.inf
        return self.budget - float(np.sum(np.where(self.priced & (self.hi > 0), self.prices, 0.0)))

    def project(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact projection of ratios ``x`` and keep-fractions ``z`` onto the feasible set."""
        w = self.money_weights
        return project_mixture(x, np.where(self.free, z, self.q_fixed), self.lo, self.hi, self.q_min, self.q_max,
                               self.slope, w if np.any(w > 0) else None, self.money_cap)

    def money(self, q: np.ndarray) -> float:
        return float(self.money_weights @ q)


def _per_source(value, names: list[str], what: str, default: float) -> np.ndarray:
    if value is None:
        return np.full(len(names), default)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what} names unknown source(s) {unknown}; sources are {names}")
        arr = np.array([float(value.get(n, default)) for n in names])
    else:
        if not np.isscalar(value):
            raise ValueError(f"{what} must be a number or a dict source -> number, got {value!r}")
        arr = np.full(len(names), float(value))
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{what} must be in [0, 1], got {dict(zip(names, arr.tolist()))}")
    return arr


def _thresholds(thresholds, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which keep-fractions are optimised and the fixed values of the others."""
    free = np.zeros(len(names), bool)
    fixed = np.ones(len(names))
    if thresholds is True:
        free[:] = True
    elif thresholds is False or thresholds is None:
        pass
    elif isinstance(thresholds, Mapping):
        unknown = sorted(set(thresholds) - set(names))
        if unknown:
            raise ValueError(f"thresholds names unknown source(s) {unknown}; sources are {names}")
        for i, n in enumerate(names):
            if n not in thresholds:
                continue
            v = thresholds[n]
            if v is None:
                free[i] = True
            elif not (np.isscalar(v) and np.isfinite(v) and 0 < float(v) <= 1):
                raise ValueError(f"thresholds[{n!r}]={v!r}: a fixed keep-fraction must be in (0, 1] (None = optimise)")
            else:
                fixed[i] = float(v)
    elif isinstance(thresholds, str):
        raise ValueError(f"thresholds={thresholds!r}: give True, False, a list of source names or a dict")
    else:
        chosen = list(thresholds)
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise ValueError(f"thresholds names unknown source(s) {unknown}; sources are {names}")
        free[[names.index(n) for n in chosen]] = True
    return free, fixed


def check_constraints(*, names: list[str], tokens: float, available, budget: float | None = None,
                      prices: Mapping | None = None, min_ratio=0.0, max_ratio=None, max_epochs: float | None = None,
                      thresholds=True, q_aware: bool = True) -> MixtureProblem:
    """Validate a mixture problem and check that it is feasible.

    Parameters
    ----------
    names : list of str
        Sources, in ratio order.
    tokens : float
        Samples seen (>= 1).
    available : dict of str to int, or array-like of shape (n_sources,)
        Unique samples of each source (>= 1).
    budget : float, optional
        Money budget (needs ``prices``).
    prices : dict of str to float, optional
        Price of one sample; sources without a price are owned (free).
    min_ratio, max_ratio : float or dict of str to float, optional
    max_epochs : float, optional
        Passes over each source's kept samples (> 0).
    thresholds : bool, list of str, or dict of str to (float or None), default=True
        Keep-fractions optimised: all (True), none (False), those named, or fixed values (None in a
        dict = optimise that source).
    q_aware : bool, default=True
        Whether the predictor models keep-fractions; when it does not, only priced sources' shares
        (amounts bought) are decision variables.

    Returns
    -------
    MixtureProblem

    Raises
    ------
    ValueError
        Bad values, unknown names, or infeasible constraints (the message names which).
    """
    names = [str(n) for n in names]
    k = len(names)
    if k == 0 or len(set(names)) != k:
        raise ValueError(f"sources must be one or more unique names, got {names}")
    if not (np.isscalar(tokens) and np.isfinite(tokens)):
        raise ValueError(f"tokens={tokens!r} must be a finite number of samples seen")
    if tokens < 1:
        raise ValueError(f"tokens={tokens!r} is below one sample; the compute budget must be >= 1 sample seen")
    T = float(tokens)
    if isinstance(available, Mapping):
        unknown = sorted(set(available) - set(names))
        missing = [n for n in names if n not in available]
        if unknown or missing:
            raise ValueError(f"available sizes: unknown source(s) {unknown}, missing {missing}; sources are {names}")
        U = np.array([available[n] for n in names], dtype=np.float64)
    else:
        U = np.asarray(available, dtype=np.float64).reshape(-1)
        if U.size != k:
            raise ValueError(f"available has {U.size} sizes for {k} sources")
    if not np.all(np.isfinite(U)) or np.any(U < 1) or np.any(U != np.round(U)):
        raise ValueError(f"available unique samples must be whole numbers >= 1, got {dict(zip(names, U.tolist()))}")
    E = math.inf if max_epochs is None else float(max_epochs)
    if not E > 0:
        raise ValueError(f"max_epochs={max_epochs!r} must be > 0 (or None for no limit)")
    lo = _per_source(min_ratio, names, "min_ratio", 0.0)
    hi_user = _per_source(max_ratio, names, "max_ratio", 1.0)
    free, q_fixed = _thresholds(thresholds, names)
    c = np.zeros(k)
    priced = np.zeros(k, bool)
    if prices is not None:
        if not isinstance(prices, Mapping):
            raise ValueError(f"prices must be a dict source -> price of one sample, got {type(prices).__name__}")
        unknown = sorted(set(prices) - set(names))
        if unknown:
            raise ValueError(f"prices names unknown source(s) {unknown}; sources are {names}")
        for i, n in enumerate(names):
            if n in prices and prices[n] is not None:
                v = float(prices[n])
                if not (np.isfinite(v) and v >= 0):
                    raise ValueError(f"prices[{n!r}]={prices[n]!r} must be a finite number >= 0")
                c[i], priced[i] = v, True
    B = math.inf
    if budget is not None:
        B = float(budget)
        if not (np.isfinite(B) and B >= 0):
            raise ValueError(f"budget={budget!r} must be a finite amount of money >= 0")
        if not priced.any():
            raise ValueError("a money budget was given but no source has a price; "
                             "give prices (or Sources with a price)")
    if not q_aware:
        free[:] = False  # the predictor cannot value filtering: keep everything not fixed by the caller
    free |= priced & np.isfinite(B) & (q_fixed == 1.0) & ~_fixed_mask(thresholds, names)

    # the epoch bound with q at its largest value: p_i <= E q_max_i U_i / T
    q_max = np.where(free, 1.0, q_fixed)
    hi_epochs = E * q_max * U / T if math.isfinite(E) else np.full(k, np.inf)
    hi = np.minimum(hi_user, hi_epochs)
    for i, n in enumerate(names):
        if lo[i] > hi_user[i]:
            raise ValueError(f"min_ratio[{n!r}]={lo[i]:g} exceeds max_ratio[{n!r}]={hi_user[i]:g}")
        if lo[i] > hi[i]:
            raise ValueError(
                f"infeasible: min_ratio[{n!r}]={lo[i]:g} needs {lo[i] * T:.6g} samples seen from {n!r}, but "
                f"max_epochs={E:g} over its {q_max[i] * U[i]:.0f} usable samples allows {E * q_max[i] * U[i]:.6g}; "
                "raise max_epochs, lower min_ratio or tokens")
    if lo.sum() > 1 + 1e-12:
        raise ValueError(f"infeasible: min_ratio sums to {lo.sum():.6g} > 1 over the sources; lower the minimum ratios")
    if hi_user.sum() < 1 - 1e-12:
        raise ValueError(f"infeasible: max_ratio sums to {hi_user.sum():.6g} < 1 over the sources; "
                         "raise the maximum ratios")
    if hi.sum() < 1 - 1e-12:
        raise ValueError(
            f"infeasible: max_epochs={E:g} lets the sources supply at most {hi.sum() * T:.6g} of the "
            f"tokens={T:.6g} samples seen ({', '.join(f'{n}: {h * T:.6g}' for n, h in zip(names, hi))}); "
            "raise max_epochs, add data, or lower tokens")
    hi = np.maximum(hi, lo)
    problem = MixtureProblem(names=names, tokens=T, available=U, lo=lo, hi=np.minimum(hi, 1.0), max_epochs=E,
                             free=free, q_fixed=q_fixed, prices=c, priced=priced, budget=B)
    if math.isfinite(B):
        usable = priced & (problem.hi > 0)
        if usable.any() and B < c[usable].min():
            raise ValueError(f"budget={B:g} is below the price of one sample (cheapest: {c[usable].min():g})")
        least = _least_money(problem)
        if least > problem.money_cap + 1e-9 * max(1.0, B):
            slack = B - problem.money_cap
            raise ValueError(
                f"infeasible: budget={B:g} is below the least the constraints need ({least + slack:.6g}: the unique "
                f"samples that max_epochs={E:g} and min_ratio require, fixed purchases, and one sample of rounding "
                "slack per priced source); raise the budget, relax max_epochs or min_ratio, or leave sources out "
                "with max_ratio=0")
    logger.debug("mixture problem: %d sources, T=%g, E=%g, budget=%g, %d keep-fractions optimised",
                 k, T, E, B, int(free.sum()))
    return problem


def _fixed_mask(thresholds, names) -> np.ndarray:
    """Sources whose keep-fraction the caller fixed to a value (a dict entry with a number)."""
    if isinstance(thresholds, Mapping):
        return np.array([n in thresholds and thresholds[n] is not None for n in names])
    return np.zeros(len(names), bool)


def _least_money(problem: MixtureProblem) -> float:
    """Least money any feasible (p, q) spends: min sum_i w_i q_i over the polygons and the simplex (LP)."""
    from scipy.optimize import linprog

    k, w = problem.k, problem.money_weights
    a = problem.slope
    fin = np.flatnonzero(np.isfinite(a))
    A_ub = np.zeros((fin.size, 2 * k))
    A_ub[np.arange(fin.size), fin] = 1.0
    A_ub[np.arange(fin.size), k + fin] = -a[fin]
    res = linprog(np.r_[np.zeros(k), w], A_ub=A_ub if fin.size else None, b_ub=np.zeros(fin.size) if fin.size else None,
                  A_eq=np.r_[np.ones(k), np.zeros(k)][None, :], b_eq=[1.0],
                  bounds=list(zip(problem.lo, problem.hi)) + list(zip(problem.q_min, problem.q_max)), method="highs")
    if not res.success:  # pragma: no cover - the ratio constraints were checked before
        raise ValueError(f"infeasible constraints: {res.message}")
    return float(res.fun)
