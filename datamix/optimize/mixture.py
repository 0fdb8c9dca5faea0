"""The mixture optimizer: ratios, keep-fractions (filtering thresholds) and purchases by torch autograd.

:func:`optimize_mixture` maximises a predictor's metric (minimises it when
``predictor.greater_is_better`` is False) at a compute budget of ``tokens`` samples seen, over the
ratios :math:`p` and keep-fractions :math:`q` under the constraints of
:mod:`datamix.optimize.constraints`:

.. math:: \\max_{p, q}\\ \\pm\\,m(p, T, q) \\quad \\text{s.t.}\\quad \\textstyle\\sum_i p_i = 1,\\
          l \\le p \\le h,\\ 1/U_i \\le q_i \\le 1,\\ p_i T \\le E q_i U_i,\\ \\sum_i c_i q_i U_i \\le B.

Method: projected gradient ascent in :math:`(p, q)` with Armijo backtracking from several seeded
starts; on small problems each end point is then polished by a compass search (moves of one
keep-fraction, or of ratio mass between two sources) and ascended again, because the QQT law has
kinks — at bucket edges and at whole epochs — where gradient steps stall. The best end point wins.
The predictor is evaluated through torch autograd: predictors written in torch (``predict_torch``) are
differentiated directly, ``q`` included; any other predictor is wrapped in a
``torch.autograd.Function`` whose backward calls ``predictor.gradient(p, N)`` and takes
d/dq by forward finite differences (``gradient_q`` when the predictor has one). Projections are
exact (see :mod:`~datamix.optimize.constraints`); the softmax parameterisation of STYLE §3 is not
used because it cannot express per-source maximum ratios, the epoch bound, or a ratio of exactly 0.
The returned plan rounds kept samples to whole samples such that every constraint holds exactly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from datamix.optimize._objective import _Objective
from datamix.optimize.constraints import MixtureProblem, check_constraints
from datamix.optimize.plan import Plan, fingerprint
from datamix.predict.laws import accepts_q

__all__ = ["optimize_mixture", "MixtureOptimizer", "score_thresholds"]

logger = logging.getLogger(__name__)

_ARMIJO = 1e-4
_POLISH_MAX_DIRECTIONS = 80


# ------------------------------------------------------------------------------------------------ solver
@dataclass
class _Path:
    p: np.ndarray
    q: np.ndarray
    value: float
    n_iter: int
    converged: bool
    curve: list = field(default_factory=list)


def _ascend(obj: _Objective, prob: MixtureProblem, p: np.ndarray, q: np.ndarray, *, max_iter: int,
            tol: float, start: _Path | None = None) -> _Path:
    """Projected gradient ascent in (p, q) with Armijo backtracking from one feasible start
    (``start``: a path to continue, whose steps and curve are kept)."""
    f, gp, gq = obj.value_grad(prob, p, q)
    curve, eta, converged, stalls = [f], None, False, 0
    if start is not None:
        curve = list(start.curve)
    it = 0
    for it in range(1, max_iter + 1):
        if eta is None:
            eta = 0.1 / max(float(np.abs(gp).max()), float(np.abs(gq).max()), 1e-300)
        accepted = False
        for _ in range(60):
            p2, q2 = prob.project(p + eta * gp, q + eta * gq)
            dp, dq = p2 - p, q2 - q
            if max(float(np.abs(dp).max()), float(np.abs(dq).max())) < 1e-14:
                break
            f2 = obj.value(prob, p2, q2)
            if f2 > f and f2 >= f + _ARMIJO * (gp @ dp + gq @ dq):
                accepted = True
                break
            eta *= 0.5
        if not accepted:
            converged = True
            break
        gain = f2 - f
        p, q = p2, q2
        f, gp, gq = obj.value_grad(prob, p, q)
        curve.append(f)
        eta *= 2.0
        stalls = stalls + 1 if gain <= tol * max(1.0, abs(f)) else 0
        if stalls >= 3:
            converged = True
            break
    if start is not None:
        it += start.n_iter
    return _Path(p, q, f, it, converged, curve)


def _polish(obj: _Objective, prob: MixtureProblem, path: _Path, *, max_evals: int = 4000) -> _Path:
    """Compass search from the end of a gradient path: moves of one keep-fraction, or of ratio mass
    between two sources, by a step that shrinks from 1e-2 to 1e-7.

    Gradient steps stall at the law's kinks (bucket edges, whole epochs), where the slope on one
    side is not the slope on the other; these moves need no gradient. Used for problems with at
    most ``_POLISH_MAX_DIRECTIONS`` directions.
    """
    p, q, f = path.p.copy(), path.q.copy(), path.value
    k = prob.k
    movable = np.flatnonzero(prob.hi > prob.lo)
    dirs = [(None, i) for i in np.flatnonzero(prob.free)]
    dirs += [(i, j) for a, i in enumerate(movable) for j in movable[a + 1:]]
    step, evals, moves = 1e-2, 0, 0
    while step > 1e-7 and evals < max_evals:
        improved = False
        for i, j in dirs:
            for sign in (1.0, -1.0):
                dp, dq = np.zeros(k), np.zeros(k)
                if i is None:
                    dq[j] = sign * step
                else:
                    dp[i], dp[j] = sign * step, -sign * step
                p2, q2 = prob.project(p + dp, q + dq)
                f2 = obj.value(prob, p2, q2)
                evals += 1
                if f2 > f + 1e-15 * max(1.0, abs(f)):
                    p, q, f, improved = p2, q2, f2, True
                    moves += 1
                    break
        if not improved:
            step /= 4.0
    return _Path(p, q, f, path.n_iter + moves, path.converged, path.curve + ([f] if moves else []))


def _starts(prob: MixtureProblem, n_starts: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded feasible starts: ratios proportional to the data, uniform, then Dirichlet draws;
    keep-fractions all kept, half, then uniform draws."""
    k = prob.k
    out = []
    for j in range(n_starts):
        if j == 0:
            x = prob.available / prob.available.sum()
        elif j == 1:
            x = np.full(k, 1.0 / k)
        else:
            x = rng.dirichlet(np.ones(k))
        z = np.ones(k) if j == 0 else np.full(k, 0.5) if j == 1 else rng.uniform(0.0, 1.0, k)
        out.append(prob.project(x, z))
    return out


def _kept_samples(prob: MixtureProblem, p: np.ndarray, q: np.ndarray, q_aware: bool) -> np.ndarray:
    """Whole samples kept per source, such that the epoch bound and the budget hold exactly.

    ``round(q U)``, raised to ``ceil(p T / E)``: at most one sample above the continuous plan, which
    the continuous budget left as slack for every priced source.
    """
    T, U, E = prob.tokens, prob.available, prob.max_epochs
    kept = np.zeros(prob.k, dtype=np.int64)
    low = np.zeros(prob.k, dtype=np.int64)
    for i in range(prob.k):
        if p[i] <= 0:
            continue
        x = p[i] * T / E if math.isfinite(E) else 1.0
        low[i] = min(int(U[i]), max(1, math.ceil(x - 1e-12 * max(1.0, x))))
        kept[i] = min(int(U[i]), max(int(low[i]), int(round(q[i] * U[i]))))
        if not q_aware and prob.priced[i] and prob.free[i]:  # the predictor cannot value unique data: buy one pass
            kept[i] = min(kept[i], max(int(low[i]), math.ceil(p[i] * T - 1e-9)))
    if math.isfinite(prob.budget):
        c = np.where(prob.priced, prob.prices, 0.0)
        excess = float(c @ kept) - prob.budget
        for i in np.argsort(-c, kind="stable"):  # safety net; the slack makes it unneeded
            if excess <= 0:
                break
            if c[i] <= 0 or not prob.free[i] or kept[i] <= low[i]:
                continue
            cut = min(int(kept[i] - low[i]), math.ceil(excess / c[i] - 1e-12))
            kept[i] -= cut
            excess -= cut * c[i]
        if float(c @ kept) > prob.budget:  # pragma: no cover - guarded by check_constraints
            raise RuntimeError("could not round the purchase to whole samples within the budget")
    return kept


def score_thresholds(keep: Mapping[str, int], scores: Mapping[str, np.ndarray]) -> dict:
    """Score cut-off that keeps ``keep[name]`` samples of each scored source (the lowest kept score,
    as :func:`datamix.apply.select_rows` ranks: higher = better, ties by row order); NaN otherwise."""
    out = {}
    for name, n in keep.items():
        sc = scores.get(name) if scores is not None else None
        if sc is None or n < 1:
            out[name] = math.nan
            continue
        sc = np.asarray(sc, dtype=np.float64)
        order = np.lexsort((np.arange(sc.size), -sc))
        out[name] = float(sc[order[min(int(n), sc.size) - 1]])
    return out


# ------------------------------------------------------------------------------------------------ public API
def _parse_sources(sources, names: list[str]) -> tuple[dict, dict]:
    from datamix.data.sources import Source

    if isinstance(sources, Mapping):
        available = dict(sources)
        src_prices = {}
    else:
        sources = list(sources)
        if not all(isinstance(s, Source) for s in sources):
            raise TypeError("sources must be a dict name -> available unique samples, or a list of Source")
        available = {s.name: int(s.total_size) for s in sources}
        src_prices = {s.name: float(s.price) for s in sources if s.price is not None}
    unknown = [n for n in available if n not in names]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}: the predictor mixes {names}")
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"sources lack {missing}: give the available unique samples of every source the "
                         f"predictor mixes ({names})")
    for n, v in available.items():
        if isinstance(v, bool) or not (np.isscalar(v) and float(v) == int(v) and int(v) >= 1):
            raise ValueError(f"sources[{n!r}]={v!r}: available unique samples must be an integer >= 1")
    return {n: int(available[n]) for n in names}, src_prices


class MixtureOptimizer:
    """Multi-start projected-gradient optimizer of mixture ratios, keep-fractions and purchases.

    Parameters
    ----------
    n_starts : int, default=8
        Seeded starts (ratios proportional to the data, uniform, then Dirichlet draws).
    max_iter : int, default=500
        Gradient steps per start.
    tol : float, default=1e-10
        Stop a start after three steps that each gain less than ``tol * max(1, |metric|)``.
    seed : int, default=0
    level : float, default=0.9
        Coverage of the plan's prediction interval.

    Attributes
    ----------
    plan_ : Plan
    loss_curve_ : ndarray of shape (n_iter + 1,)
        Signed objective (the metric, negated when lower is better) along the best start.
    start_values_ : ndarray of shape (n_starts,)
        Final signed objective of every start.
    n_iter_ : int
        Steps of the best start.
    converged_ : bool
    gradient_methods_ : dict
        How d/dp and d/dq were obtained ("autograd", "predictor.gradient", "finite differences").
    problem_ : MixtureProblem
    """

    def __init__(self, *, n_starts: int = 8, max_iter: int = 500, tol: float = 1e-10, seed: int = 0,
                 level: float = 0.9):
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed
        self.level = level

    def _check(self) -> None:
        for name in ("n_starts", "max_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}={v!r} must be an integer >= 1")
        if not (np.isscalar(self.tol) and self.tol > 0):
            raise ValueError(f"tol={self.tol!r} must be > 0")
        if not 0 < self.level < 1:
            raise ValueError(f"level={self.level!r} must be in (0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed={self.seed!r} must be an integer")

    def fit(self, predictor, *, tokens, sources, budget=None, prices=None, min_ratio=0.0, max_ratio=None,
            max_epochs=None, thresholds=True, scores=None) -> "MixtureOptimizer":
        """Optimise; see :func:`optimize_mixture` for the arguments."""
        self._check()
        for attr in ("sources_", "greater_is_better", "predict", "gradient"):
            if not hasattr(predictor, attr):
                raise TypeError(f"predictor {type(predictor).__name__} lacks {attr!r}: it must be a fitted predictor "
                                "with predict(p, N), gradient(p, N), greater_is_better and sources_")
        names = [str(n) for n in predictor.sources_]
        available, src_prices = _parse_sources(sources, names)
        own = getattr(predictor, "sizes_", None)
        if isinstance(own, Mapping):
            off = {n: (available[n], own[n]) for n in names if n in own and abs(own[n] - available[n]) > 0.5}
            if off:
                raise ValueError(f"available samples differ from the predictor's source sizes {off} "
                                 "(given, predictor); the keep-fractions would mean different things")
        eff_prices = dict(src_prices) if budget is not None else {}
        eff_prices.update(prices or {})
        obj = _Objective(predictor, tokens if np.isscalar(tokens) and np.isfinite(tokens) and tokens >= 1 else 1.0)
        prob = check_constraints(names=names, tokens=tokens, available=available, budget=budget,
                                 prices=eff_prices or None, min_ratio=min_ratio, max_ratio=max_ratio,
                                 max_epochs=max_epochs, thresholds=thresholds, q_aware=obj.q_aware)
        if eff_prices and not obj.q_aware and max_epochs is None:
            logger.warning("%s does not model keep-fractions or repetition: with prices and no max_epochs the "
                           "amounts bought are not valued; set max_epochs (e.g. 1)", type(predictor).__name__)
        scores = self._check_scores(scores, prob, available)
        rng = np.random.default_rng(self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: OpenMP workers only spin (and results stay thread-independent)
        try:
            with threadpool_limits(1):
                paths = [_ascend(obj, prob, p0, q0, max_iter=self.max_iter, tol=self.tol)
                         for p0, q0 in _starts(prob, self.n_starts, rng)]
                n_dirs = int(prob.free.sum()) + int((prob.hi > prob.lo).sum()) ** 2 // 2
                if n_dirs <= _POLISH_MAX_DIRECTIONS:  # small problems: polish past the kinks, then ascend again
                    paths = [_ascend(obj, prob, pp.p, pp.q, max_iter=self.max_iter, tol=self.tol, start=pp)
                             for pp in (_polish(obj, prob, pa) for pa in paths)]
        finally:
            torch.set_num_threads(threads)
        best = max(range(len(paths)), key=lambda j: (paths[j].value, -j))
        path = paths[best]
        kept = _kept_samples(prob, path.p, path.q, obj.q_aware)
        self.plan_ = self._plan(predictor, obj, prob, path, kept, scores, min_ratio, max_ratio)
        self.loss_curve_ = np.array(path.curve)
        self.start_values_ = np.array([pa.value for pa in paths])
        self.n_iter_ = int(path.n_iter)
        self.converged_ = bool(path.converged)
        self.gradient_methods_ = dict(obj.methods)
        self.problem_ = prob
        logger.info("optimized %d sources at %g samples seen: predicted %.6g (best of %d starts, %d steps)",
                    prob.k, prob.tokens, self.plan_.predicted, len(paths), path.n_iter)
        return self

    @staticmethod
    def _check_scores(scores, prob: MixtureProblem, available: dict):
        if scores is None:
            return None
        if not isinstance(scores, Mapping):
            raise ValueError("scores must be a dict source -> quality scores (higher = better)")
        unknown = sorted(set(scores) - set(prob.names))
        if unknown:
            raise ValueError(f"scores name unknown source(s) {unknown}; sources are {prob.names}")
        filtered = [n for n, f, q in zip(prob.names, prob.free, prob.q_fixed) if f or q < 1]
        missing = [n for n in filtered if n not in scores]
        if missing:
            raise ValueError(f"scores missing for source(s) {missing}: they are filtered (thresholds) but have no "
                             "quality scores; give scores or leave them out of thresholds")
        out = {}
        for n, sc in scores.items():
            sc = np.asarray(sc, dtype=np.float64)
            if sc.ndim != 1 or sc.size != available[n] or not np.isfinite(sc).all():
                raise ValueError(f"scores[{n!r}] must be {available[n]} finite numbers (one per available sample), "
                                 f"got shape {sc.shape}")
            out[n] = sc
        return out

    def _plan(self, predictor, obj: _Objective, prob: MixtureProblem, path: _Path, kept: np.ndarray, scores,
              min_ratio, max_ratio) -> Plan:
        from datamix import __version__

        names, T, U, E = prob.names, prob.tokens, prob.available, prob.max_epochs
        p = path.p.copy()
        used = p > 0
        q = np.where(used, kept / U, np.where(prob.free, 1.0, prob.q_fixed))
        epochs = np.where(used, p * T / np.maximum(kept, 1), 0.0)
        if math.isfinite(E):
            epochs = np.minimum(epochs, E)
        predicted = float(predictor.predict(p, T, q=q) if obj.q_aware else predictor.predict(p, T))
        interval = _interval(predictor, p, T, q, obj.q_aware, self.level)
        calibrated = getattr(predictor, "calibrated", None)
        buy = {n: int(kept[i]) for i, n in enumerate(names) if prob.priced[i]}
        keep_n = {n: int(kept[i]) for i, n in enumerate(names)}  # 0 for unused sources: no cut-off (NaN)
        thresholds = score_thresholds(keep_n, scores or {})
        cost = float(sum(prob.prices[i] * kept[i] for i in range(prob.k) if prob.priced[i]))
        params = getattr(predictor, "params_", None)
        provenance = {
            "datamix_version": __version__,
            "seed": int(self.seed),
            "predictor": type(predictor).__name__,
            "greater_is_better": bool(predictor.greater_is_better),
            "tokens": T,
            "budget": None if not math.isfinite(prob.budget) else prob.budget,
            "cost": cost if prob.priced.any() else None,
            "max_epochs": None if not math.isfinite(E) else E,
            "min_ratio": dict(zip(names, prob.lo.tolist())),
            "max_ratio": dict(zip(names, _per(max_ratio, names, 1.0))),
            "available": {n: int(u) for n, u in zip(names, U)},
            "kept": {n: int(x) for n, x in zip(names, kept)},
            "prices": {n: float(prob.prices[i]) for i, n in enumerate(names) if prob.priced[i]},
            "optimised_keep_fractions": [n for n, f in zip(names, prob.free) if f],
            "law_params": {str(k): float(v) for k, v in params.items()} if isinstance(params, Mapping) else None,
            # the interval rests on measured errors (None: the predictor cannot tell)
            "interval_calibrated": (bool(calibrated(p, T, q=q) if obj.q_aware else calibrated(p, T))
                                    if calibrated is not None else None),
            "inputs": fingerprint(np.array(names, dtype=object), U, prob.prices, prob.lo, prob.hi, prob.free,
                                  prob.q_fixed, np.array([T, E, prob.budget])),
            "scores": {n: fingerprint(s) for n, s in (scores or {}).items()},
            "gradients": dict(obj.methods),
            "solver": {"method": "multi-start projected gradient ascent, Armijo backtracking, exact projections",
                       "n_starts": int(self.n_starts), "n_iter": int(path.n_iter), "converged": bool(path.converged),
                       "level": float(self.level)},
        }
        return Plan(ratios=dict(zip(names, p.tolist())), keep_fractions=dict(zip(names, q.tolist())),
                    thresholds=thresholds, epochs=dict(zip(names, epochs.tolist())), buy=buy, predicted=predicted,
                    interval=interval, provenance=provenance)


def _per(value, names, default) -> list:
    if value is None:
        return [default] * len(names)
    if isinstance(value, Mapping):
        return [float(value.get(n, default)) for n in names]
    return [float(value)] * len(names)


def _interval(predictor, p, T, q, q_aware: bool, level: float) -> tuple[float, float]:
    fn = getattr(predictor, "predict_interval", None)
    if fn is None:
        return (math.nan, math.nan)
    try:
        if q_aware and accepts_q(fn):
            lo, hi = fn(p, T, q=q, level=level)
        else:
            lo, hi = fn(p, T, level=level)
    except (ValueError, NotImplementedError) as exc:
        logger.info("no prediction interval: %s", exc)
        return (math.nan, math.nan)
    return (float(lo), float(hi))


def optimize_mixture(predictor, *, tokens, sources, budget=None, prices=None, min_ratio=0, max_epochs=None,
                     thresholds=True, seed=0, max_ratio=None, scores=None, n_starts: int = 8, max_iter: int = 500,
                     tol: float = 1e-10, level: float = 0.9) -> Plan:
    """Best mixture ratios, keep-fractions (filtering thresholds) and purchases under a compute budget.

    Parameters
    ----------
    predictor : fitted predictor
        ``predict(p, N)`` (or ``predict(p, N, q=None)`` when it models keep-fractions),
        ``gradient(p, N)``, ``greater_is_better`` and ``sources_``; a ``predict_torch`` method is
        differentiated by autograd instead.
    tokens : float
        Compute budget: samples (or tokens) seen in training, >= 1.
    sources : dict of str to int, or list of Source
        Available unique samples of every source of ``predictor.sources_`` (a Source's
        ``total_size``, its offer when only a sample is revealed).
    budget : float, optional
        Money to spend on priced sources.
    prices : dict of str to float, optional
        Price of one sample; default, with a budget, the Sources' own prices. Sources without a
        price are owned.
    min_ratio : float or dict of str to float, default=0
    max_epochs : float, optional
        Most passes over any source's kept samples.
    thresholds : bool, list of str, or dict of str to (float or None), default=True
        Keep-fractions to optimise (a predictor without ``q`` keeps everything unfiltered).
    seed : int, default=0
        Seeds the starts; a rerun gives the same plan, byte for byte.
    max_ratio : float or dict of str to float, optional
    scores : dict of str to ndarray of shape (n_available,), optional
        Quality scores (higher = better) that turn keep-fractions into score cut-offs; required for
        every filtered source when given.
    n_starts, max_iter, tol, level
        See :class:`MixtureOptimizer`.

    Returns
    -------
    Plan
        ``ratios``, ``keep_fractions`` (kept samples / available, whole samples), ``thresholds``,
        ``epochs`` (= ratio · tokens / kept), ``buy`` (priced sources), ``predicted``, ``interval``
        and ``provenance``.

    Raises
    ------
    ValueError
        Unknown or missing sources, bad values, infeasible constraints (naming which), a compute
        budget below one sample, a money budget below one sample's price, missing scores.

    Examples
    --------
    >>> from datamix.laws.qqt import QualityQuantity
    >>> from datamix.predict.laws import QualityPredictor
    >>> law = QualityQuantity.from_params({"a": 1.0, "d": 0.0, "b[hi]": -0.4, "b[lo]": -0.2,
    ...                                     "tau[hi]": 2.0, "tau[lo]": 2.0})
    >>> pred = QualityPredictor(law, pools={"web": {"hi": 100.0, "lo": 100.0}}).fit()
    >>> plan = optimize_mixture(pred, tokens=150, sources={"web": 200}, n_starts=2)
    >>> plan.ratios, plan.keep_fractions["web"] < 1
    ({'web': 1.0}, True)
    """
    return MixtureOptimizer(n_starts=n_starts, max_iter=max_iter, tol=tol, seed=seed, level=level).fit(
        predictor, tokens=tokens, sources=sources, budget=budget, prices=prices, min_ratio=min_ratio,
        max_ratio=max_ratio, max_epochs=max_epochs, thresholds=thresholds, scores=scores).plan_
