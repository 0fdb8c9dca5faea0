"""How well does OTPredictor predict mixture performance, against OT-free baselines? (issue 7)

Setting (the issue's anchor): three bundled digits sources — class-skewed, 40% label noise, 30%
corrupted pixels — each revealing 20% of its offer; a logistic-regression proxy; the 66 mixtures
with ratios in steps of 0.1. Every mixture is trained at the revealed sizes 38, 75, 150 and 300 on
the revealed samples, and at 1200 (4x the largest revealed size) on the full offers, with several
seeds; the mean over seeds is the truth a prediction is scored against.

1. Stage 1 at N = 300: MAE of OTPredictor (forms split / affine / published / complete) and of the
   baselines linear and quadratic in the ratios (plain least squares, and ridge with a
   leave-one-out penalty), fitted on the same 10 / 20 / 40 trainings (one seed each), in two
   splits: random held-out mixtures, and the paper's region split (fit where p_2 < 0.5, predict
   where p_2 >= 0.5; p_2 = the noisy-label share). Mean ± std over repetitions (each a new draw of
   the training mixtures and a new training seed); the measurement noise is printed beside it.
2. Extrapolation to 1200 from stage 1 at 38..300: MAE of both stage-2 rules.
3. Selection: the mixture the gradient method picks, trained, vs uniform, size-proportional and
   best-single-source mixtures, at N = 300 (revealed) and 1200 (full offers).

Runs are kept in ``--out`` (``runs_revealed.csv``, ``runs_full.csv``) and reused by later runs;
results go to ``--out/results.json``. ``--quick`` (3 seeds, 4 repetitions) runs in about two
minutes on two busy cores once the runs exist; the default (5 seeds, 10 repetitions) in about six.

    python benchmarks/ot_predictor.py --quick
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from datamix.data.bundled import load_scenario
from datamix.io import write_json
from datamix.predict import OTPredictor, RatioPolynomial, select_mixture, simplex_grid
from datamix.proxy.runs import MixtureRunner, ProxyTrainer, ratio_columns

NAMES = ["skewed", "noisy_labels", "corrupted"]
SIZES = [38, 75, 150, 300]
BIG = 1200
TRAININGS = (10, 20, 40)


def measure(args):
    revealed = load_scenario("digits", seed=0, revealed=0.2)
    full = load_scenario("digits", seed=0, revealed=None)
    trainer = ProxyTrainer(model=args.trainer)
    grid = simplex_grid(3, 10)
    seeds = list(range(args.seeds))
    out = Path(args.out)
    r_rev = MixtureRunner([revealed.source(n) for n in NAMES], revealed.target, trainer=trainer,
                          table=out / "runs_revealed.csv", flush_every=200)
    r_full = MixtureRunner([full.source(n) for n in NAMES], full.target, trainer=trainer,
                           table=out / "runs_full.csv", flush_every=200)
    t0 = time.perf_counter()
    rev = r_rev.measure_many(grid, SIZES, seeds=seeds)
    big = r_full.measure_many(grid, [BIG], seeds=seeds)
    print(f"runs: {len(rev) + len(big)} ({int((~rev.reused).sum() + (~big.reused).sum())} trained, the rest "
          f"reused from {out}) in {time.perf_counter() - t0:.0f} s; trainer {trainer.signature}")
    sources = [revealed.source(n) for n in NAMES]
    target = (revealed.target.vectors(), revealed.target.labels)
    return sources, target, grid, rev, big, r_rev, r_full, full


def truth_table(runs: pd.DataFrame, grid: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed-mean (truth) and seed std per grid mixture at ``size``; rows in grid order."""
    cols = ratio_columns(NAMES)
    d = runs[runs["size"] == size]
    g = d.groupby([d[c].round(6) for c in cols])["metric"]
    mean, std = g.mean(), g.std(ddof=1)
    keys = [tuple(np.round(p, 6)) for p in grid]
    return mean.loc[keys].to_numpy(), std.loc[keys].to_numpy()


def subset(runs: pd.DataFrame, grid: np.ndarray, idx, seed: int, sizes) -> pd.DataFrame:
    cols = ratio_columns(NAMES)
    keys = {tuple(np.round(grid[i], 6)) for i in idx}
    mask = [tuple(k) in keys for k in np.round(runs[cols].to_numpy(), 6)]
    return runs[np.array(mask) & (runs["seed"] == seed) & runs["size"].isin(sizes)]


def split_indices(split: str, grid: np.ndarray, T: int, rng) -> tuple[np.ndarray, np.ndarray]:
    if split == "random":
        order = rng.permutation(len(grid))
        return order[:T], order[T:]
    inside, outside = np.flatnonzero(grid[:, 1] < 0.5), np.flatnonzero(grid[:, 1] >= 0.5)
    return rng.choice(inside, min(T, len(inside)), replace=False), outside


def stage1_table(args, sources, target, grid, rev):
    truth, seed_std = truth_table(rev, grid, 300)
    ot = OTPredictor(target=target, sizes=[300])
    forms = ["split", "affine", "published", "complete"]
    baselines = {"linear": RatioPolynomial(degree=1, sizes=[300]), "quadratic": RatioPolynomial(degree=2, sizes=[300]),
                 "linear+ridge": RatioPolynomial(degree=1, sizes=[300], alpha="auto"),
                 "quadratic+ridge": RatioPolynomial(degree=2, sizes=[300], alpha="auto")}
    results = {}
    for split in ("random", "region"):
        for T in TRAININGS:
            errs = {k: [] for k in [f"OT-{f}" for f in forms] + list(baselines)}
            for rep in range(args.reps):
                rng = np.random.default_rng(1000 * T + rep)
                tr, te = split_indices(split, grid, T, rng)
                runs = subset(rev, grid, tr, rep % args.seeds, [300])
                for f in forms:
                    ot.set_params(form=f).fit(sources, runs)
                    errs[f"OT-{f}"].append(np.mean(np.abs(ot.predict(grid[te], 300) - truth[te])))
                for k, m in baselines.items():
                    m.fit(NAMES, runs)
                    errs[k].append(np.mean(np.abs(m.predict(grid[te], 300) - truth[te])))
            results[(split, T)] = {k: (100 * np.mean(v), 100 * np.std(v)) for k, v in errs.items()}
    sigma = float(np.mean(seed_std))
    floor = 100 * np.sqrt(2 / np.pi) * sigma / np.sqrt(args.seeds)
    print(f"\n1. Stage 1 at N=300 — MAE in accuracy points, mean ± std over {args.reps} repetitions")
    print(f"   measurement noise: seed std of one training {100 * sigma:.2f} points; the truth (mean of "
          f"{args.seeds} seeds) alone costs ~{floor:.2f} MAE")
    keys = list(next(iter(results.values())))
    header = f"   {'split':7s} {'T':>3s} " + " ".join(f"{k:>15s}" for k in keys) + "   OT-split/best baseline"
    print(header)
    for (split, T), row in results.items():
        best = min(row[k][0] for k in baselines)
        cells = " ".join(f"{row[k][0]:7.2f} ± {row[k][1]:4.2f}" for k in keys)
        print(f"   {split:7s} {T:3d} {cells}   {row['OT-split'][0] / best:.2f}x")
    return results, sigma, floor


def extrapolation_table(args, sources, target, grid, rev, big):
    truth_big, std_big = truth_table(big, grid, BIG)
    rows = {}
    models = {"OT-split": OTPredictor(target=target, sizes=SIZES),  # one instance: its OT cache is reused
              "linear": RatioPolynomial(degree=1, sizes=SIZES),
              "quadratic": RatioPolynomial(degree=2, sizes=SIZES)}
    for T in (20, 40):
        errs = {}
        for rep in range(args.reps):
            rng = np.random.default_rng(7000 + 100 * T + rep)
            tr, te = split_indices("random", grid, T, rng)
            runs = subset(rev, grid, tr, rep % args.seeds, SIZES)
            for name, m in models.items():
                for rule in ("two_point", "power_law", "auto"):
                    if rule == "auto" and name != "OT-split":
                        continue
                    m.set_params(extrapolation=rule).fit(sources if name.startswith("OT") else NAMES, runs)
                    key = f"{name} {rule}"
                    errs.setdefault(key, []).append(np.mean(np.abs(m.predict(grid[te], BIG) - truth_big[te])))
                    if rule == "auto":
                        errs.setdefault("auto chose power_law", []).append(float(m.extrapolation_ == "power_law"))
        rows[T] = {k: (100 * np.mean(v), 100 * np.std(v)) for k, v in errs.items()}
    print(f"\n2. Extrapolation to N={BIG} (4x the largest revealed size) from stage 1 at {SIZES} "
          f"— MAE in points (truth: full offers, seed std {100 * np.mean(std_big):.2f})")
    for T, row in rows.items():
        chose = row.pop("auto chose power_law")[0] / 100
        print(f"   T={T:2d} per size: " + "; ".join(f"{k} {m:.2f} ± {s:.2f}" for k, (m, s) in row.items())
              + f"; auto chose power_law in {chose:.0%} of repetitions")
        row["auto chose power_law (share)"] = chose
    return rows


def selection(args, sources, target, grid, rev, r_rev, r_full, full):
    """Train the gradient method's mixture and three simple ones; mean ± std over fresh seeds."""
    rng = np.random.default_rng(99)
    tr, _ = split_indices("random", grid, 20, rng)
    model = OTPredictor(target=target, sizes=SIZES).fit(sources, subset(rev, grid, tr, 0, SIZES))
    lin = RatioPolynomial(degree=1, sizes=SIZES, extrapolation=model.extrapolation_)
    lin.fit(NAMES, subset(rev, grid, tr, 0, SIZES))
    offers = np.array([full.source(n).total_size for n in NAMES], dtype=float)
    seeds = list(range(100, 100 + args.seeds))
    out = {}
    print(f"\n3. Selection (OTPredictor fitted on 20 random mixtures x {len(SIZES)} sizes; mixtures trained "
          f"with seeds {seeds[0]}..{seeds[-1]}): measured accuracy, mean ± std over seeds")
    for N, runner in ((300, r_rev), (BIG, r_full)):
        singles = {n: runner.measure_many(np.eye(3)[[i]], [N], seeds=seeds)["metric"].mean()
                   for i, n in enumerate(NAMES)}
        best_single = max(singles, key=singles.get)
        mixtures = {"gradient method (OTPredictor)": select_mixture(model, N).ratios,
                    "uniform": np.full(3, 1 / 3),
                    "size-proportional": offers / offers.sum(),
                    f"best single source ({best_single})": np.eye(3)[NAMES.index(best_single)],
                    "gradient method (linear baseline)": select_mixture(lin, N).ratios}
        rows = {}
        for name, p in mixtures.items():
            p = np.round(p, 4)
            p = p / p.sum()  # so that one mixture is always the same run (and reused)
            m = runner.measure_many(p[None, :], [N], seeds=seeds)["metric"]
            rows[name] = {"ratios": np.round(p, 3).tolist(), "measured": float(m.mean()), "std": float(m.std(ddof=1)),
                          "predicted": float(model.predict(p, N))}
            print(f"   N={N:4d} {name:38s} p={np.round(p, 2).tolist()!s:20s} measured {100 * m.mean():6.2f} ± "
                  f"{100 * m.std(ddof=1):4.2f}   predicted {100 * rows[name]['predicted']:6.2f}")
        chosen = rows["gradient method (OTPredictor)"]["measured"]
        others = [v["measured"] for k, v in rows.items() if not k.startswith("gradient")]
        verdict = ">=" if chosen >= max(others) - 1e-12 else "<"
        print(f"   N={N}: gradient-method mixture {verdict} the best simple mixture "
              f"({100 * chosen:.2f} vs best {100 * max(others):.2f})")
        out[N] = rows
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 4 repetitions")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds per mixture (default 5; quick 3)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per cell (default 10; quick 4)")
    parser.add_argument("--trainer", default="logistic", choices=["logistic", "linear", "mlp"])
    parser.add_argument("--out", default="runs/bench_ot_predictor", help="folder for the runs tables and results")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (3 if args.quick else 5)
    args.reps = args.reps or (4 if args.quick else 10)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    t0 = time.perf_counter()
    sources, target, grid, rev, big, r_rev, r_full, full = measure(args)
    table, sigma, floor = stage1_table(args, sources, target, grid, rev)
    extra = extrapolation_table(args, sources, target, grid, rev, big)
    chosen = selection(args, sources, target, grid, rev, r_rev, r_full, full)
    results = {"setting": {"sources": NAMES, "trainer": args.trainer, "seeds": args.seeds, "reps": args.reps,
                           "sizes": SIZES, "big": BIG},
               "stage1": {f"{s}/{T}": v for (s, T), v in table.items()},
               "seed_std": sigma, "noise_floor_mae": floor, "extrapolation": extra, "selection": chosen,
               "seconds": time.perf_counter() - t0}
    write_json(Path(args.out) / "results.json", json.loads(json.dumps(results, default=float)))
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; results in {Path(args.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
