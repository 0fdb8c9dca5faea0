"""The compute-aware threshold curve: best keep-fraction per source at every compute budget.

Goyal et al. (2024) show that the best filtering threshold depends on compute: with little
compute the best data is worth repeating, with more it is exhausted and a lower threshold (more,
worse data) wins. :func:`threshold_curve` traces that Pareto frontier of curation vs compute with a
predictor, either continuously (the optimizer at every budget) or over given candidate
keep-fractions (e.g. the pools a QQT law was fitted on).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from datamix.optimize.mixture import optimize_mixture
from datamix.predict.laws import accepts_q

__all__ = ["Frontier", "threshold_curve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frontier:
    """Best decision at every compute budget.

    Attributes
    ----------
    sources : list of str
    budgets : ndarray of shape (n_budgets,)
        Samples seen.
    ratios, keep_fractions, epochs : ndarray of shape (n_budgets, n_sources)
    predicted : ndarray of shape (n_budgets,)
    greater_is_better : bool
    mode : {"continuous", "candidates"}
    """

    sources: list
    budgets: np.ndarray
    ratios: np.ndarray
    keep_fractions: np.ndarray
    epochs: np.ndarray
    predicted: np.ndarray
    greater_is_better: bool
    mode: str

    def to_frame(self) -> pd.DataFrame:
        """One row per budget: ``budget``, ``predicted``, then ``ratio_``, ``keep_`` and ``epochs_`` per source."""
        df = pd.DataFrame({"budget": self.budgets, "predicted": self.predicted})
        for j, s in enumerate(self.sources):
            df[f"ratio_{s}"] = self.ratios[:, j]
            df[f"keep_{s}"] = self.keep_fractions[:, j]
            df[f"epochs_{s}"] = self.epochs[:, j]
        return df

    def keep(self, source: str) -> np.ndarray:
        """Best keep-fraction of ``source`` at every budget, shape (n_budgets,)."""
        if source not in self.sources:
            raise ValueError(f"unknown source {source!r}; the frontier has {self.sources}")
        return self.keep_fractions[:, self.sources.index(source)]


def _check_budgets(budgets) -> np.ndarray:
    b = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if b.size == 0 or not np.all(np.isfinite(b)) or np.any(b < 1):
        raise ValueError(f"budgets must be one or more finite numbers >= 1 (samples seen), got {budgets!r}")
    return b


def threshold_curve(predictor, budgets: Sequence[float], *, sources, ratios: Mapping | None = None,
                    candidates: Mapping | None = None, seed: int = 0, **constraints) -> Frontier:
    """Best keep-fraction per source (and ratios) for a range of compute budgets.

    Parameters
    ----------
    predictor : fitted predictor modelling keep-fractions (``predict(p, N, q=None)``)
    budgets : sequence of float
        Samples seen, each >= 1.
    sources : dict of str to int, or list of Source
        Available unique samples (as for :func:`~datamix.optimize.optimize_mixture`).
    ratios : dict of str to float, optional
        Fixed mixture ratios; default: optimised at every budget too.
    candidates : dict of str to sequence of float, optional
        Keep-fractions to choose from per source (others keep everything); every combination is
        evaluated — with ``ratios`` fixed (or one source) directly, else with ratios optimised for
        each. Default: keep-fractions optimised continuously.
    seed : int, default=0
    **constraints
        Passed to :func:`~datamix.optimize.optimize_mixture` (``max_epochs``, ``min_ratio``, ...);
        ``max_epochs`` may also be a sequence, one cap per budget.

    Returns
    -------
    Frontier

    Examples
    --------
    >>> from datamix.laws.qqt import QualityQuantity
    >>> from datamix.predict.laws import QualityPredictor
    >>> law = QualityQuantity.from_params({"a": 1.0, "d": 0.0, "b[hi]": -0.4, "b[lo]": -0.3,
    ...                                     "tau[hi]": 1.0, "tau[lo]": 1.0})
    >>> pred = QualityPredictor(law, pools={"web": {"hi": 100.0, "lo": 100.0}}).fit()
    >>> threshold_curve(pred, [100, 100_000], sources={"web": 200},
    ...                 candidates={"web": [0.5, 1.0]}).keep("web").tolist()
    [0.5, 1.0]
    """
    if not accepts_q(predictor.predict):
        raise ValueError(f"{type(predictor).__name__} does not model keep-fractions (no q in predict); "
                         "a threshold curve needs a predictor such as QualityPredictor")
    B = _check_budgets(budgets)
    caps = constraints.pop("max_epochs", None)
    caps = list(caps) if np.ndim(caps) == 1 else [caps] * B.size
    if len(caps) != B.size:
        raise ValueError(f"max_epochs holds {len(caps)} caps for {B.size} budgets; give one per budget or a number")
    names = [str(n) for n in predictor.sources_]
    if ratios is not None:
        unknown = sorted(set(ratios) - set(names))
        if unknown:
            raise ValueError(f"ratios name unknown source(s) {unknown}; sources are {names}")
        p_fixed = np.array([float(ratios.get(n, 0.0)) for n in names])
        if abs(p_fixed.sum() - 1) > 1e-9 or np.any(p_fixed < 0):
            raise ValueError(f"ratios must be >= 0 and sum to 1, got {dict(zip(names, p_fixed))}")
        constraints = {**constraints, "min_ratio": dict(zip(names, p_fixed)), "max_ratio": dict(zip(names, p_fixed))}
    elif len(names) == 1:
        p_fixed = np.ones(1)
    else:
        p_fixed = None
    rows = []
    if candidates is None:
        thresholds = constraints.pop("thresholds", True)
        for N, cap in zip(B, caps):
            plan = optimize_mixture(predictor, tokens=N, sources=sources, thresholds=thresholds, seed=seed,
                                    max_epochs=cap, **constraints)
            rows.append(_row(plan, names))
        mode = "continuous"
    else:
        unknown = sorted(set(candidates) - set(names))
        if unknown:
            raise ValueError(f"candidates name unknown source(s) {unknown}; sources are {names}")
        grids = [sorted({float(v) for v in candidates.get(n, [1.0])}) for n in names]
        for g, n in zip(grids, names):
            if not g or g[0] <= 0 or g[-1] > 1:
                raise ValueError(f"candidates[{n!r}] must be keep-fractions in (0, 1], got {candidates.get(n)}")
        combos = np.array(list(itertools.product(*grids)))
        sign = 1.0 if predictor.greater_is_better else -1.0
        for N, cap in zip(B, caps):
            if p_fixed is not None:
                P = np.broadcast_to(p_fixed, combos.shape)
                values = np.asarray(predictor.predict(P, N, q=combos), dtype=np.float64).reshape(-1)
                j = int(np.argmax(sign * values))
                rows.append((p_fixed, combos[j], _epochs(p_fixed, combos[j], N, sources, names), float(values[j])))
            else:
                best = None
                for qc in combos:
                    plan = optimize_mixture(predictor, tokens=N, sources=sources, seed=seed,
                                            thresholds=dict(zip(names, qc)), max_epochs=cap, **constraints)
                    if best is None or sign * plan.predicted > sign * best.predicted:
                        best = plan
                rows.append(_row(best, names))
        mode = "candidates"
    R, Q, E, V = (np.array([r[i] for r in rows], dtype=np.float64) for i in range(4))
    logger.info("threshold curve over %d budgets (%s): keep-fractions %s", B.size, mode, np.round(Q, 4).tolist())
    return Frontier(names, B, R, Q, E, V, bool(predictor.greater_is_better), mode)


def _row(plan, names):
    return (np.array([plan.ratios[n] for n in names]), np.array([plan.keep_fractions[n] for n in names]),
            np.array([plan.epochs[n] for n in names]), plan.predicted)


def _epochs(p, q, N, sources, names) -> np.ndarray:
    if isinstance(sources, Mapping):
        U = np.array([float(sources[n]) for n in names])
    else:
        by = {s.name: s for s in sources}
        U = np.array([float(by[n].total_size) for n in names])
    return np.where(p > 0, p * N / (q * U), 0.0) if not math.isnan(N) else np.zeros(len(names))
