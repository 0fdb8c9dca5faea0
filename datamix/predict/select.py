"""Choosing a mixture, and a purchase under a budget, with any predictor of the protocol.

A predictor has ``predict(p, N)``, ``gradient(p, N)`` (along the simplex), ``sources_`` and
``greater_is_better`` (DESIGN §3). These helpers are small on purpose: the general optimizer
(`datamix.optimize`) replaces them once it exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from datamix.predict._simplex import project_simplex

__all__ = ["MixtureChoice", "PurchaseChoice", "select_mixture", "plan_purchase", "max_affordable"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixtureChoice:
    """Result of :func:`select_mixture`.

    Attributes
    ----------
    ratios : ndarray of shape (n_sources,)
    predicted : float
    n_iter : int
        Gradient steps taken (best start).
    history : ndarray of shape (n_iter + 1,)
        Predicted metric along the best start's path.
    """

    ratios: np.ndarray
    predicted: float
    n_iter: int
    history: np.ndarray


def select_mixture(predictor, N: float, *, starts=None, step: float = 0.2, max_iter: int = 100,
                   tol: float = 1e-7) -> MixtureChoice:
    """Best mixture at size ``N`` by projected gradient ascent on the simplex (Projektor's method).

    From each start, step along the predictor's gradient (descent when ``greater_is_better`` is
    False), project onto the simplex, and halve the step whenever the prediction does not
    improve; stop when the step falls below ``tol`` or after ``max_iter`` steps. The best end
    point over the starts wins.

    Parameters
    ----------
    predictor : fitted predictor
    N : float
        Training-set size.
    starts : array-like of shape (n_starts, n_sources), optional
        Default: the uniform mixture and every single source.
    step : float, default=0.2
        First step length (in ratio units, along the normalised gradient).
    max_iter : int, default=100
    tol : float, default=1e-7

    Returns
    -------
    MixtureChoice
    """
    k = len(predictor.sources_)
    sign = 1.0 if predictor.greater_is_better else -1.0
    starts = np.vstack([np.full(k, 1.0 / k), np.eye(k)]) if starts is None else np.atleast_2d(starts)
    best = None
    for p in starts:
        p = project_simplex(p)
        value = sign * predictor.predict(p, N)
        history, eta, it = [sign * value], step, 0
        while eta > tol and it < max_iter:
            g = sign * predictor.gradient(p, N)
            norm = np.linalg.norm(g)
            if norm == 0:
                break
            q = project_simplex(p + eta * g / norm)
            v = sign * predictor.predict(q, N)
            if v > value + 1e-12:
                p, value = q, v
                history.append(sign * v)
                it += 1
            else:
                eta /= 2
        if best is None or value > best[1]:
            best = (p, value, it, np.array(history))
    p, value, it, history = best
    return MixtureChoice(p, sign * value, it, history)


def max_affordable(prices: np.ndarray, offers: np.ndarray, budget: float) -> int:
    """Most samples the budget buys: the cheapest first, each source up to its offer."""
    total, left = 0, float(budget)
    for i in np.argsort(prices, kind="stable"):
        n = offers[i] if prices[i] == 0 else min(offers[i], int(np.floor(left / prices[i] + 1e-9)))
        total += int(n)
        left -= n * prices[i]
    return total


@dataclass(frozen=True)
class PurchaseChoice:
    """Result of :func:`plan_purchase`.

    Attributes
    ----------
    buy : dict of str to int
        Samples to buy from each source.
    ratios : dict of str to float
        The mixture they make.
    size : int
        Samples bought in all.
    cost : float
    predicted : float
        Predicted metric of a model trained on the purchase.
    candidates : list of dict
        Every start tried, with the purchase it led to and its prediction.
    """

    buy: dict
    ratios: dict
    size: int
    cost: float
    predicted: float
    candidates: list = field(default_factory=list)


def _optimize_amounts(predictor, x0, prices, offers, budget, sign, max_iter, floor):
    """Maximise sign * predict(x / sum x, sum x) over amounts x under the budget and the offers (SLSQP).

    With the prediction F(p, N), p = x / N, N = sum(x): dF/dx_i = g_i / N + dF/dN, g the gradient
    along the simplex.
    """
    k = len(prices)

    def fun(x):
        x = np.clip(x, 1e-9, None)
        N = x.sum()
        p = x / N
        value = sign * predictor.predict(p, N)
        grad = sign * (predictor.gradient(p, N) / N + predictor.size_derivative(p, N))
        return -value, -grad

    cons = [{"type": "ineq", "fun": lambda x: budget - prices @ x, "jac": lambda x: -prices},
            {"type": "ineq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(k)}]
    with threadpool_limits(1):  # tiny problem: BLAS threads only spin (see base._power_law)
        res = minimize(fun, x0, jac=True, method="SLSQP", bounds=list(zip(floor, offers.astype(float))),
                       constraints=cons, options={"maxiter": max_iter, "ftol": 1e-10})
    x = np.clip(res.x, floor, offers)
    if prices @ x > budget * (1 + 1e-9) or x.sum() < 1:
        x = x0
    return x


def _rounded(x, prices, offers, budget):
    """Integer amounts: round down, then add single samples by the largest remainder while affordable."""
    buy = np.minimum(np.floor(x + 1e-9).astype(np.int64), offers)
    for i in np.argsort(-(x - buy), kind="stable"):
        if x[i] - buy[i] > 0.5 and buy[i] < offers[i] and prices @ buy + prices[i] <= budget:
            buy[i] += 1
    return buy


def plan_purchase(predictor, *, prices: dict, offers: dict, budget: float, starts=None,
                  max_iter: int = 50, owned: Sequence[str] = ()) -> PurchaseChoice:
    r"""How many samples to buy from each source to get the best predicted metric within ``budget``.

    Maximises the prediction of the mixture the purchase makes, at the size it makes, over the
    amounts :math:`x_i` (:math:`0 \le x_i \le` ``offers[i]``, :math:`\sum_i \text{price}_i x_i \le`
    ``budget``) by SLSQP with the predictor's gradients in the ratios and in the size, from
    several feasible starts: the cheapest samples first (the most data), the budget split
    evenly, and each source alone as far as the budget goes. Amounts are then rounded to
    integers within the budget.

    Parameters
    ----------
    predictor : fitted predictor
        With ``predict``, ``gradient``, ``size_derivative``, ``sources_``, ``greater_is_better``.
    prices : dict of str to float
        Price of one sample per source (>= 0).
    offers : dict of str to int
        Samples each source offers (its whole offer, >= 1).
    budget : float
    starts : array-like of shape (n_starts, n_sources), optional
        Extra starting amounts.
    max_iter : int, default=50
        SLSQP iterations per start.
    owned : sequence of str, default=()
        Sources held in full (their whole offer, price 0): data the buyer owns. Every start and
        the search keep them at ``offers``; the purchase is what comes on top.

    Returns
    -------
    PurchaseChoice

    Raises
    ------
    ValueError
        Unknown or missing source names, negative prices, an owned source with a price, or a
        budget that buys nothing.
    """
    names = list(predictor.sources_)
    unknown = [n for n in owned if n not in names]
    if unknown:
        raise ValueError(f"owned names unknown source(s) {unknown}; the predictor's sources are {names}")
    priced = [n for n in owned if float(prices.get(n, 0)) != 0]
    if priced:
        raise ValueError(f"owned source(s) {priced} have a price; owned data costs nothing (price 0)")
    for what, d in (("prices", prices), ("offers", offers)):
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"{what} lack source(s) {missing}; the predictor's sources are {names}")
    c = np.array([float(prices[n]) for n in names])
    o = np.array([int(offers[n]) for n in names])
    if (c < 0).any() or not np.isfinite(c).all():
        raise ValueError(f"prices must be finite and >= 0, got {dict(zip(names, c))}")
    if (o < 1).any():
        raise ValueError(f"offers must be >= 1 sample, got {dict(zip(names, o))}")
    if not (np.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget={budget!r} must be a finite number >= 0")
    floor = np.array([float(o[i]) if n in owned else 0.0 for i, n in enumerate(names)])
    if max_affordable(c, o, budget) < 1:
        raise ValueError(f"budget {budget} buys no sample (cheapest price {c.min()})")
    k = len(names)
    cheapest = np.zeros(k)
    left = budget
    for i in np.argsort(c, kind="stable"):
        cheapest[i] = o[i] if c[i] == 0 else min(o[i], left / c[i])
        left -= cheapest[i] * c[i]
    even = np.array([o[i] if c[i] == 0 else min(o[i], budget / k / c[i]) for i in range(k)])
    singles = [np.eye(k)[i] * (o[i] if c[i] == 0 else min(o[i], budget / c[i])) for i in range(k)]
    candidates = [np.maximum(x, floor) for x in [cheapest, even, *singles,
                                                 *(np.atleast_2d(starts) if starts is not None else [])]]
    candidates = [x for x in candidates if x.sum() >= 1 and c @ x <= budget * (1 + 1e-9)]
    sign = 1.0 if predictor.greater_is_better else -1.0
    tried, best = [], None
    for x0 in candidates:
        x = _optimize_amounts(predictor, np.asarray(x0, dtype=float), c, o, budget, sign, max_iter, floor)
        buy = _rounded(x, c, o, budget)
        if buy.sum() < 1:
            continue
        size = int(buy.sum())
        value = sign * predictor.predict(buy / size, size)
        tried.append({"start": dict(zip(names, np.round(x0, 2).tolist())), "buy": dict(zip(names, buy.tolist())),
                      "predicted": sign * value})
        if best is None or value > best[1] + 1e-12:
            best = (buy, value)
    buy, value = best
    size = int(buy.sum())
    logger.info("purchase: %s for %.2f, predicted %.4f", dict(zip(names, buy.tolist())), c @ buy, sign * value)
    return PurchaseChoice(buy=dict(zip(names, buy.tolist())), ratios=dict(zip(names, (buy / size).tolist())),
                          size=size, cost=float(c @ buy), predicted=float(sign * value), candidates=tried)
