"""Synthetic predictors with known parameters and a brute-force oracle for the optimizer tests."""

import itertools

import numpy as np
import pytest
import torch

from datamix.laws.qqt import QualityQuantity
from datamix.predict.laws import QualityPredictor


def qqt_predictor(spec: dict, *, a=1.0, d=0.05, nested=False, output="error", form="datamix"):
    """spec: source -> list of (size, b, tau) per pool, best first."""
    params, pools = {"a": a, "d": d}, {}
    for src, rows in spec.items():
        pools[src] = {}
        for j, (size, b, tau) in enumerate(rows):
            name = f"{src}.{j}"
            params[f"b[{name}]"], params[f"tau[{name}]"] = b, tau
            pools[src][name] = float(size)
    law = QualityQuantity.from_params(params, form=form)
    return QualityPredictor(law, pools=pools, nested=nested, output=output).fit()


def _values(pred, P, Q, T):
    out = []
    with torch.no_grad():
        for s in range(0, len(P), 20000):
            out.append(pred.predict_torch(torch.tensor(P[s:s + 20000]), T, torch.tensor(Q[s:s + 20000])).numpy())
    return np.concatenate(out)


def brute_force(pred, T, U, *, free, lo=None, max_epochs=None, prices=None, budget=None, step=0.05, rounds=3,
                keep=5):
    """Best (value, p, q) on grids refined around the ``keep`` best points (coarse to fine).

    free: bool per source (keep-fraction searched, else 1); p on the simplex; every grid point is
    checked against the constraints, so the oracle is obviously feasible.
    """
    k = len(U)
    U = np.asarray(U, float)
    lo = np.zeros(k) if lo is None else np.asarray(lo, float)
    sign = 1.0 if pred.greater_is_better else -1.0
    nq = int(np.sum(free))

    def feasible(P, Q):
        ok = np.all(P >= lo - 1e-12, axis=1) & np.all(Q >= 1.0 / U, axis=1) & np.all(Q <= 1, axis=1)
        ok &= np.all(P >= -1e-12, axis=1) & (np.abs(P.sum(1) - 1) < 1e-9)
        if max_epochs is not None:
            ok &= np.all(P * T <= max_epochs * Q * U * (1 + 1e-12), axis=1)
        if budget is not None:
            ok &= (Q * U) @ np.asarray(prices, float) <= budget + 1e-9
        return ok

    def grid_around(center, half, h):
        axes_p = [np.arange(c - half, c + half + h / 2, h) for c in center[:k - 1]]
        axes_q = [np.arange(c - half, c + half + h / 2, h) for c in center[k - 1:]]
        pts = np.array(list(itertools.product(*(axes_p + axes_q))))
        P = np.column_stack([pts[:, :k - 1], 1 - pts[:, :k - 1].sum(1)])
        Q = np.ones((len(pts), k))
        Q[:, free] = pts[:, k - 1:]
        return P, Q

    coarse_p = [np.arange(0, 1 + step / 2, step)] * (k - 1)
    coarse_q = [np.arange(step, 1 + step / 2, step)] * nq
    pts = np.array(list(itertools.product(*(coarse_p + coarse_q))))
    P = np.column_stack([pts[:, :k - 1], 1 - pts[:, :k - 1].sum(1)])
    Q = np.ones((len(pts), k))
    Q[:, free] = pts[:, k - 1:]
    h = step
    best = None
    for _ in range(rounds + 1):
        ok = feasible(P, Q)
        P, Q = np.clip(P[ok], 0, 1), Q[ok]
        v = sign * _values(pred, P, Q, T)
        order = np.argsort(-v)[:keep]
        if best is None or v[order[0]] > best[0]:
            best = (v[order[0]], P[order[0]], Q[order[0]])
        centers = [np.r_[P[i, :k - 1], Q[i, free]] for i in order]
        h /= 5
        grids = [grid_around(c, 5 * h, h) for c in centers]
        P = np.vstack([g[0] for g in grids])
        Q = np.vstack([g[1] for g in grids])
    return sign * best[0], best[1], best[2]


@pytest.fixture
def make_qqt():
    """``make_qqt(spec, **kw)``: a QualityPredictor with known parameters (see :func:`qqt_predictor`)."""
    return qqt_predictor


@pytest.fixture
def oracle():
    """``oracle(pred, T, U, free=..., ...)``: the brute-force best (value, p, q)."""
    return brute_force


@pytest.fixture
def two_sources():
    # web: big, mediocre; books: small, excellent top bucket — repetition makes the trade-off
    return qqt_predictor({"web": [(3000, -0.22, 4.0), (3000, -0.12, 4.0)],
                          "books": [(250, -0.45, 1.5), (250, -0.25, 1.5)]})
