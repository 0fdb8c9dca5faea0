"""Speed and accuracy of datamix's mixture optimizer.

Prints, in one run:

1. solve time for many sources with keep-fractions (thresholds) optimised, an epoch limit, and
   (second row) a money budget — the acceptance target is 50 sources in under 5 s on 2 cores;
2. the optimizer against a brute-force grid (coarse grid, then finer grids around the best
   points) on random 2- and 3-source problems: the relative gap in the predicted metric
   (acceptance: within 0.1%);
3. the compute-aware threshold curve with the published QQT parameters (Goyal et al. 2024,
   T-MARS utility fit): the best pool at 32M, 64M, 128M and 640M samples seen (published: top-10%,
   top-10%, top-20%, top-20%; 18.3%, 24.6%, 29.6%, 38.6% ImageNet accuracy), and the continuous
   keep-fraction the optimizer picks at each budget.

Usage::

    python benchmarks/optimize_speed.py                 # 50 sources, 12 oracle problems
    python benchmarks/optimize_speed.py --sources 100 --problems 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from datamix.laws.qqt import QualityQuantity
from datamix.optimize import MixtureOptimizer, optimize_mixture
from datamix.optimize.frontier import threshold_curve
from datamix.predict.laws import QualityPredictor

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reference" / "qqt_parameter_values.jsonl"


def synthetic(k: int, *, buckets: int = 4, seed: int = 0) -> QualityPredictor:
    """k sources of 4 quality buckets: utility falls with the bucket, half-lives vary."""
    rng = np.random.default_rng(seed)
    params, pools = {"a": 1.0, "d": 0.05}, {}
    for i in range(k):
        base, size = rng.uniform(-0.3, -0.08), int(rng.integers(500, 5000))
        pools[f"s{i}"] = {}
        for j in range(buckets):
            name = f"s{i}.q{j}"
            params[f"b[{name}]"], params[f"tau[{name}]"] = base * (1 - 0.15 * j), rng.uniform(1, 8)
            pools[f"s{i}"][name] = float(size // buckets)
    return QualityPredictor(QualityQuantity.from_params(params), pools=pools).fit()


def speed(k: int, seed: int) -> list[dict]:
    pred = synthetic(k, seed=seed)
    avail = {s: int(v) for s, v in pred.sizes_.items()}
    T = 2 * sum(avail.values())
    rows = []
    names = list(avail)
    cases = {"thresholds + max_epochs": {"max_epochs": 8},
             "+ money budget (10 priced)": {"max_epochs": 8, "prices": {n: 0.01 for n in names[:10]},
                                            "budget": 0.01 * 0.3 * sum(avail[n] for n in names[:10]) + 1}}
    for label, kw in cases.items():
        t0 = time.perf_counter()
        opt = MixtureOptimizer(seed=seed).fit(pred, tokens=T, sources=avail, **kw)
        rows.append({"case": f"{k} sources, {label}", "seconds": time.perf_counter() - t0,
                     "predicted_error": opt.plan_.predicted,
                     "sources_used": sum(v > 0 for v in opt.plan_.ratios.values()),
                     "steps_best_start": opt.n_iter_, "starts_spread": float(np.ptp(opt.start_values_))})
    return rows


def brute_force(pred, T, U, free, max_epochs=None, step=0.05, rounds=3, keep=8):
    """Best error on a grid over (ratios, keep-fractions), refined around the best points."""
    k = len(U)
    U = np.asarray(U, float)

    def values(P, Q):
        with torch.no_grad():
            return np.concatenate([pred.predict_torch(torch.tensor(P[s:s + 20000]), T,
                                                      torch.tensor(Q[s:s + 20000])).numpy()
                                   for s in range(0, len(P), 20000)])

    def points(axes):
        pts = np.array(list(itertools.product(*axes)))
        P = np.column_stack([pts[:, :k - 1], 1 - pts[:, :k - 1].sum(1)])
        Q = np.ones((len(pts), k))
        Q[:, free] = pts[:, k - 1:]
        ok = (P >= -1e-12).all(1) & (Q >= 1 / U).all(1) & (Q <= 1).all(1)
        if max_epochs is not None:
            ok &= (P * T <= max_epochs * Q * U * (1 + 1e-12)).all(1)
        return np.clip(P[ok], 0, 1), Q[ok]

    nq = int(np.sum(free))
    P, Q = points([np.arange(0, 1 + step / 2, step)] * (k - 1) + [np.arange(step, 1 + step / 2, step)] * nq)
    best, h = None, step
    for _ in range(rounds + 1):
        v = values(P, Q)
        order = np.argsort(v)[:keep]
        if best is None or v[order[0]] < best:
            best = float(v[order[0]])
        h /= 5
        grids = [points([np.arange(c - 5 * h, c + 5.5 * h, h) for c in np.r_[P[i, :k - 1], Q[i, free]]]) for i in order]
        P, Q = np.vstack([g[0] for g in grids]), np.vstack([g[1] for g in grids])
    return best


def oracle(n_problems: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(n_problems):
        k = 2 if j % 2 == 0 else 3
        spec = {f"s{i}": [(int(rng.integers(200, 3000)), -rng.uniform(0.1, 0.45), rng.uniform(0.5, 6))
                          for _ in range(int(rng.integers(1, 3)))] for i in range(k)}
        params, pools = {"a": 1.0, "d": 0.05}, {}
        for s, pl in spec.items():
            pools[s] = {}
            for b, (size, util, tau) in enumerate(pl):
                params[f"b[{s}.{b}]"], params[f"tau[{s}.{b}]"] = util, tau
                pools[s][f"{s}.{b}"] = float(size)
        pred = QualityPredictor(QualityQuantity.from_params(params), pools=pools).fit()
        U = [int(pred.sizes_[s]) for s in pred.sources_]
        T = float(rng.uniform(0.3, 20) * sum(U))
        free = np.array([True] * 2 + [False] * (k - 2))  # 3 sources: keep-fractions of two (5-D grid is too big)
        E = None if j % 4 < 2 else float(rng.uniform(2, 10))
        if E is not None and sum(E * u for u in U) < T:
            E = None
        t0 = time.perf_counter()
        plan = optimize_mixture(pred, tokens=T, sources=dict(zip(pred.sources_, U)), max_epochs=E,
                                thresholds=[s for s, f in zip(pred.sources_, free) if f])
        t_opt = time.perf_counter() - t0
        t0 = time.perf_counter()
        bf = brute_force(pred, T, U, free, max_epochs=E)
        rows.append({"problem": j, "sources": k, "tokens": round(T), "max_epochs": E, "optimizer": plan.predicted,
                     "brute_force": bf, "gap_%": 100 * (plan.predicted - bf) / bf, "opt_s": t_opt,
                     "grid_s": time.perf_counter() - t0})
    return rows


def published() -> list[dict]:
    if not REFERENCE.exists():
        return []
    d = [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]
    d = next(x for x in d if x["id"] == "tmars_imagenet1k_utility")
    params = {"a": d["best_a"], "d": d["d_value"]}
    names = d["names"][:4]
    for n, b, tau in zip(names, d["b_values"], d["c_values"]):
        params[f"b[{n}]"], params[f"tau[{n}]"] = b, tau
    law = QualityQuantity.from_params(params, form="reference")
    pred = QualityPredictor(law, pools={"tmars": {n: 12.8e6 for n in names}}, output="accuracy").fit()
    budgets = [32e6, 64e6, 128e6, 640e6]
    cand = threshold_curve(pred, budgets, sources={"tmars": 51_200_000}, candidates={"tmars": [0.25, 0.5, 0.75, 1.0]})
    cont = threshold_curve(pred, budgets, sources={"tmars": 51_200_000})
    expected = {32e6: (10, 18.3), 64e6: (10, 24.6), 128e6: (20, 29.6), 640e6: (20, 38.6)}
    return [{"samples_seen": f"{int(b / 1e6)}M", "best_pool": f"top-{int(round(q * 40))}%",
             "published_pool": f"top-{expected[b][0]}%", "accuracy_%": round(100 * v, 2),
             "published_%": expected[b][1], "continuous_top_%": round(40 * qc, 1),
             "continuous_accuracy_%": round(100 * vc, 2)}
            for b, q, v, qc, vc in zip(budgets, cand.keep("tmars"), cand.predicted, cont.keep("tmars"), cont.predicted)]


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(fmt(r[c])) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(fmt(r[c]).ljust(w) for c, w in zip(cols, widths)) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--problems", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("1. solve time")
    print(_table(speed(args.sources, args.seed)), "\n")
    print("2. optimizer vs brute-force grid (predicted error; gap > 0 means the optimizer is worse)")
    rows = oracle(args.problems, args.seed)
    print(_table(rows))
    print(f"worst gap: {max(r['gap_%'] for r in rows):.2e} % (acceptance: <= 0.1 %)\n")
    print("3. threshold curve with the published QQT parameters (T-MARS, utility fit; 4 pools of 12.8M)")
    print(_table(published()))


if __name__ == "__main__":
    main()
