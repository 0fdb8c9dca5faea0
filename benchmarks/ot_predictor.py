"""How well does OTPredictor predict mixture performance, against OT-free baselines? (issue 7)

Setting (the issue's anchor): three bundled digits sources — class-skewed, 40% label noise, 30%
corrupted pixels — each revealing 20% of its offer; a logistic-regression proxy; the 66 mixtures
with ratios in steps of 0.1, trained on the revealed samples.

Measurements. The *truth* of a mixture is its mean accuracy over ``--seeds`` trainings (seeds
0, 1, ...). Predictors are fitted on other trainings: every training mixture gets its own seed,
drawn without replacement from a pool of ``--train-seeds`` seeds (100, 101, ...) disjoint from the
truth's. Seeds fix the draw of the training samples, and draws of one seed are nested (a mixture at
seed s shares most of its samples with its neighbours at seed s), so trainings that all used one
seed would share one draw's error; independent trainings do not, and the seeds of the fits never
enter the truth.

1. Stage 1 at N = 300: MAE of OTPredictor (forms split / affine / published / complete; least
   squares, except published and complete, which need the leave-one-out ridge penalty, and split
   once more with it) and of the baselines linear and quadratic in the ratios (plain least squares,
   the issue's baselines; and with the ridge penalty), fitted on the same 10 / 20 / 40 trainings, in two splits:
   random held-out mixtures, and the paper's region split (fit where p_2 < 0.5, predict where
   p_2 >= 0.5; p_2 = the noisy-label share). Mean ± standard error over ``--reps`` repetitions
   (each a new draw of training mixtures and seeds); the measurement noise is printed beside it.
   Two last tables repeat the OT-split ratios with all trainings of a repetition at one seed, and
   with every training's metric averaged over the whole training seed pool (nearly noise-free
   measurements: what the forms could do without the draw noise).
2. Extrapolation to 1200 (trained on the full offers) from stage 1 at the revealed sizes up to 300,
   150 and 75 (4x, 8x, 16x the largest): MAE of every stage-2 rule (logit, two-point, power law,
   auto), and of the two-point rules for the baselines.
3. Selection: an OTPredictor (stage 2 by the logit rule, as ``configs/purchase_digits.yaml``)
   fitted on the design a purchase uses (each source alone, the uniform mixture and random
   mixtures: 20 trainings x 4 sizes); the mixture the gradient method picks, trained with
   ``--fresh`` fresh seeds, vs uniform, size-proportional and best-single-source mixtures, at
   N = 300 (revealed samples) and 1200 (full offers); repeated on ``--designs`` designs. Differences are paired by seed; over the designs, the standard error is that of the
   per-seed mean over designs (designs that pick one mixture share its measurement).

Runs are kept in ``--out`` (``runs_revealed.csv``, ``runs_full.csv``) and reused; results go to
``--out/results.json``. The default run took 10 minutes on two busy cores the first time (2 of them
training the 12,040 proxies), 7.5-10 minutes with the runs kept; ``--quick`` is 5 truth seeds and 10
repetitions.

    python benchmarks/ot_predictor.py [--quick]
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
FORMS = ("split", "affine", "published", "complete")
RIDGE_FORMS = ("published", "complete")
ISSUE_BASELINES = ("linear", "quadratic")
TRAIN_SEED0, FRESH_SEED0 = 100, 200


class Runs:
    """Measured runs of the grid, looked up by (grid row, size, seed)."""

    def __init__(self, frames, grid):
        df = pd.concat(frames, ignore_index=True)
        keys = {tuple(np.round(p, 6)): i for i, p in enumerate(grid)}
        rows = [keys.get(tuple(r)) for r in np.round(df[ratio_columns(NAMES)].to_numpy(), 6)]
        self.df = df.assign(row=[-1 if r is None else r for r in rows])
        self._at = {(r, int(n), int(s)): k for k, (r, n, s) in enumerate(zip(self.df["row"], self.df["size"],
                                                                           self.df["seed"]))}

    def pick(self, rows, seeds, sizes) -> pd.DataFrame:
        """The runs of grid rows ``rows`` (row i at seed ``seeds[i]``) at every size of ``sizes``."""
        return self.df.iloc[[self._at[(int(r), n, int(s))] for r, s in zip(rows, seeds) for n in sizes]]

    def mean_runs(self, rows, seeds, size) -> pd.DataFrame:
        """One run per grid row of ``rows`` at ``size``: its metric averaged over ``seeds`` (near noise-free)."""
        d = self.df[(self.df["size"] == size) & self.df["seed"].isin(seeds) & self.df["row"].isin(rows)]
        return d.groupby("row").agg({**{c: "first" for c in ratio_columns(NAMES) + ["size"]}, "metric": "mean"})

    def truth(self, size, seeds) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over ``seeds`` of every grid row at ``size``, shape (n_grid,) each."""
        d = self.df[(self.df["size"] == size) & self.df["seed"].isin(seeds) & (self.df["row"] >= 0)]
        g = d.groupby("row")["metric"]
        return g.mean().sort_index().to_numpy(), g.std(ddof=1).sort_index().to_numpy()


def measure(args, grid):
    revealed = load_scenario("digits", seed=0, revealed=0.2)
    full = load_scenario("digits", seed=0, revealed=None)
    trainer = ProxyTrainer(model=args.trainer)
    out = Path(args.out)
    r_rev = MixtureRunner([revealed.source(n) for n in NAMES], revealed.target, trainer=trainer,
                          table=out / "runs_revealed.csv", flush_every=500)
    r_full = MixtureRunner([full.source(n) for n in NAMES], full.target, trainer=trainer,
                           table=out / "runs_full.csv", flush_every=500)
    uniform = np.full((1, 3), 1 / 3)
    t0 = time.perf_counter()
    frames = [r_rev.measure_many(grid, [300], seeds=args.truth_seeds),
              r_rev.measure_many(np.vstack([grid, uniform]), SIZES, seeds=args.train_seeds),
              r_full.measure_many(grid, [BIG], seeds=args.truth_seeds)]
    trained = sum(int((~f["reused"]).sum()) for f in frames)
    wall = sum(float(f.loc[~f["reused"], "wall_s"].sum()) for f in frames)
    print(f"runs: {sum(len(f) for f in frames)} ({trained} trained, {wall:.0f} s of training; the rest reused "
          f"from {out}) in {time.perf_counter() - t0:.0f} s; trainer {trainer.signature}")
    sources = [revealed.source(n) for n in NAMES]
    target = (revealed.target.vectors(), revealed.target.labels)
    return sources, target, Runs(frames[:2], grid), Runs(frames[2:], grid), r_rev, r_full, full


def split_indices(split: str, grid: np.ndarray, T: int, rng) -> tuple[np.ndarray, np.ndarray]:
    if split == "random":
        order = rng.permutation(len(grid))
        return order[:T], order[T:]
    inside, outside = np.flatnonzero(grid[:, 1] < 0.5), np.flatnonzero(grid[:, 1] >= 0.5)
    return rng.choice(inside, min(T, len(inside)), replace=False), outside


def training_seeds(args, n: int, rng, rep: int, shared: bool) -> np.ndarray:
    """Independent draws (a seed per training), or one seed for all trainings of a repetition."""
    if shared:
        return np.full(n, args.train_seeds[rep % len(args.train_seeds)])
    return rng.choice(args.train_seeds, n, replace=n > len(args.train_seeds))


def stage1_errors(args, models, sources, grid, rev, truth, *, shared=False, averaged=False):
    """MAE per (split, T) and model, each a list over repetitions.

    ``shared``: all trainings of a repetition at one seed; ``averaged``: every training mixture's
    metric is its mean over the whole training seed pool (measurements nearly free of noise).
    """
    errs = {}
    for split in ("random", "region"):
        for T in TRAININGS:
            cell = errs[(split, T)] = {k: [] for k in models}
            for rep in range(args.reps):
                rng = np.random.default_rng(1000 * T + rep)
                tr, te = split_indices(split, grid, T, rng)
                seeds = training_seeds(args, len(tr), rng, rep, shared)
                runs = rev.mean_runs(tr, args.train_seeds, 300) if averaged else rev.pick(tr, seeds, [300])
                for k, m in models.items():
                    m.fit(sources if isinstance(m, OTPredictor) else NAMES, runs)
                    cell[k].append(float(np.mean(np.abs(m.predict(grid[te], 300) - truth[te]))))
    return errs


def neighbour_correlation(rev, grid, seeds, truth) -> float:
    """Mean correlation, over seeds, of the errors (metric - truth) of grid mixtures 0.1 apart in ratio."""
    d = rev.df[(rev.df["size"] == 300) & rev.df["seed"].isin(seeds) & (rev.df["row"] >= 0)]
    E = d.pivot(index="seed", columns="row", values="metric").sort_index(axis=1).to_numpy() - truth
    near = np.argwhere(np.isclose(np.abs(grid[:, None] - grid[None]).sum(-1), 0.2))
    live = E.std(0) > 0  # vertices drawn whole have no draw error
    pairs = [(i, j) for i, j in near if live[i] and live[j]]
    return float(np.mean([np.corrcoef(E[:, i], E[:, j])[0, 1] for i, j in pairs]))


def stage1_table(args, sources, target, grid, rev):
    truth, seed_std = rev.truth(300, args.truth_seeds)
    models = {f"OT-{f}": OTPredictor(target=target, sizes=[300], form=f, alpha="auto" if f in RIDGE_FORMS else 0.0)
              for f in FORMS}
    models["OT-split+ridge"] = OTPredictor(target=target, sizes=[300], alpha="auto")
    baselines = {"linear": RatioPolynomial(degree=1, sizes=[300]), "quadratic": RatioPolynomial(degree=2, sizes=[300]),
                 "linear+ridge": RatioPolynomial(degree=1, sizes=[300], alpha="auto"),
                 "quadratic+ridge": RatioPolynomial(degree=2, sizes=[300], alpha="auto")}
    errs = stage1_errors(args, {**models, **baselines}, sources, grid, rev, truth)
    sigma = float(np.mean(seed_std))
    floor = 100 * np.sqrt(2 / np.pi) * sigma / np.sqrt(len(args.truth_seeds))
    se = 1 / np.sqrt(args.reps)
    print(f"\n1. Stage 1 at N=300 — MAE in accuracy points, mean ± standard error over {args.reps} repetitions")
    print(f"   measurement noise: seed std of one training {100 * sigma:.2f} points; the truth (mean of "
          f"{len(args.truth_seeds)} seeds) alone costs ~{floor:.2f} MAE; at one seed, the errors of mixtures 0.1 "
          f"apart correlate at {neighbour_correlation(rev, grid, args.truth_seeds, truth):.2f}")
    keys = list(models) + list(baselines)
    print(f"   {'split':7s} {'T':>3s} " + " ".join(f"{k:>15s}" for k in keys)
          + "   OT-split / best of linear,quadratic / best incl. ridge")
    results = {}
    for (split, T), cell in errs.items():
        row = {k: (100 * np.mean(v), 100 * np.std(v) * se) for k, v in cell.items()}
        issue = min(row[k][0] for k in ISSUE_BASELINES)
        best = min(row[k][0] for k in baselines)
        ratio_issue, ratio_best = row["OT-split"][0] / issue, row["OT-split"][0] / best
        print(f"   {split:7s} {T:3d} " + " ".join(f"{row[k][0]:8.2f} ± {row[k][1]:4.2f}" for k in keys)
              + f"   {ratio_issue:.2f}x / {ratio_best:.2f}x")
        results[f"{split}/{T}"] = {"mae": row, "ratio_issue_baselines": ratio_issue, "ratio_best_baseline": ratio_best}
    variants = {"one_seed_per_repetition": ("all trainings of a repetition at one seed (one draw's error shared "
                                            "by all)", {"shared": True}),
                "averaged_measurements": (f"every training's metric averaged over the {len(args.train_seeds)} "
                                          "training seeds (nearly noise-free measurements; what the forms can do)",
                                          {"averaged": True})}
    for name, (what, option) in variants.items():
        cells = stage1_errors(args, {"OT-split": models["OT-split"], **baselines}, sources, grid, rev, truth, **option)
        print(f"   the same with {what}:")
        for (split, T), cell in cells.items():
            m = {k: 100 * np.mean(v) for k, v in cell.items()}
            issue, best = min(m[k] for k in ISSUE_BASELINES), min(m[k] for k in baselines)
            print(f"   {split:7s} {T:3d} OT-split {m['OT-split']:5.2f}, best of linear,quadratic {issue:5.2f}, "
                  f"incl. ridge {best:5.2f}: {m['OT-split'] / issue:.2f}x / {m['OT-split'] / best:.2f}x")
            results[f"{split}/{T}"][name] = m
    return results, sigma, floor


def extrapolation_table(args, sources, target, grid, rev, big):
    """MAE at N = 1200 of every stage-2 rule, from stage 1 at the revealed sizes up to 300, 150 and 75."""
    truth_big, std_big = big.truth(BIG, args.truth_seeds)
    print(f"\n2. Extrapolation to N={BIG} from stage 1 at the revealed sizes up to {BIG // 4} / {BIG // 8} / "
          f"{BIG // 16} (4x / 8x / 16x) — MAE in points, mean ± s.e. (truth: full offers, seed std "
          f"{100 * np.mean(std_big):.2f}); the baselines with the two-point rules only")
    out = {}
    for factor in (4, 8, 16):
        sizes = [n for n in SIZES if n <= BIG // factor]
        rules = ("logit", "two_point", "power_law", "auto") if len(sizes) >= 3 else ("logit", "two_point", "auto")
        models = {"OT-split": OTPredictor(target=target, sizes=sizes),  # one instance: its OT cache is reused
                  "linear": RatioPolynomial(degree=1, sizes=sizes),
                  "quadratic": RatioPolynomial(degree=2, sizes=sizes)}
        for T in (20, 40):
            errs, chosen = {}, []
            for rep in range(args.reps):
                rng = np.random.default_rng(7000 + 100 * T + rep)
                tr, te = split_indices("random", grid, T, rng)
                runs = rev.pick(tr, training_seeds(args, len(tr), rng, rep, False), sizes)
                for name, m in models.items():
                    for rule in rules if name == "OT-split" else ("logit", "two_point"):
                        m.set_params(extrapolation=rule).fit(sources if name.startswith("OT") else NAMES, runs)
                        err = np.mean(np.abs(m.predict(grid[te], BIG) - truth_big[te]))
                        errs.setdefault(f"{name} {rule}", []).append(err)
                        if rule == "auto":
                            chosen.append(m.extrapolation_)
            row = {k: (100 * np.mean(v), 100 * np.std(v) / np.sqrt(args.reps)) for k, v in errs.items()}
            share = {r: chosen.count(r) / len(chosen) for r in sorted(set(chosen))}
            print(f"   {factor:2d}x T={T:2d}: " + "; ".join(f"{k} {m:.2f} ± {s:.2f}" for k, (m, s) in row.items())
                  + "; auto chose " + ", ".join(f"{r} {v:.0%}" for r, v in share.items()))
            out[f"{factor}x/{T}"] = {"mae": row, "auto_chose": share}
    return out


def design_runs(rev, grid, train_seeds, rng) -> pd.DataFrame:
    """A purchase's design: the uniform mixture, each source alone and 16 random mixtures, a seed each."""
    vertices = [int(np.flatnonzero((grid == np.eye(3)[i]).all(1))[0]) for i in range(3)]
    others = rng.permutation(np.setdiff1d(np.arange(len(grid)), vertices))[:16]
    seeds = rng.choice(train_seeds, 20, replace=False)
    uniform = rev.df[(rev.df["row"] == -1) & (rev.df["seed"] == seeds[0])]  # row -1: off the grid
    return pd.concat([uniform, rev.pick(np.concatenate([vertices, others]), seeds[1:], SIZES)])


def selection(args, sources, target, grid, rev, r_rev, r_full, full):
    """Picks of the gradient method on several designs, and simple mixtures, all trained with fresh seeds."""
    offers = np.array([full.source(n).total_size for n in NAMES], dtype=float)
    fresh = list(range(FRESH_SEED0, FRESH_SEED0 + args.fresh))
    runners = {300: r_rev, BIG: r_full}

    def measured(p, N):
        p = np.round(p, 4)
        p = p / p.sum()  # so that one mixture is always the same run (and reused)
        return p, runners[N].measure_many(p[None, :], [N], seeds=fresh)["metric"].to_numpy()

    simple = {N: {"uniform": measured(np.full(3, 1 / 3), N), "size-proportional": measured(offers / offers.sum(), N),
                  **{f"single source ({n})": measured(np.eye(3)[i], N) for i, n in enumerate(NAMES)}}
              for N in runners}
    picks = {N: {"OTPredictor": [], "linear baseline": []} for N in runners}
    print(f"\n3. Selection: predictors fitted on a purchase design (the uniform mixture, each source alone and 16 "
          f"random mixtures, x {len(SIZES)} sizes, a seed each); every mixture trained with fresh seeds "
          f"{fresh[0]}..{fresh[-1]}: measured accuracy, mean ± std over seeds. Design 1 of {args.designs}:")
    for d in range(args.designs):
        runs = design_runs(rev, grid, args.train_seeds, np.random.default_rng(99 + d))
        model = OTPredictor(target=target, sizes=SIZES, extrapolation="logit").fit(sources, runs)  # as the purchase config
        lin = RatioPolynomial(degree=1, sizes=SIZES, extrapolation=model.extrapolation_).fit(NAMES, runs)
        for N in runners:
            for name, m in (("OTPredictor", model), ("linear baseline", lin)):
                p, acc = measured(select_mixture(m, N).ratios, N)
                picks[N][name].append({"ratios": p, "measured": acc, "predicted": float(m.predict(p, N))})
            if d == 0:
                rows = {f"gradient method ({k})": v[0] for k, v in picks[N].items()}
                for k, (p, acc) in simple[N].items():
                    rows[k] = {"ratios": p, "measured": acc, "predicted": float(model.predict(p, N))}
                best_single = max((k for k in rows if k.startswith("single")), key=lambda k: rows[k]["measured"].mean())
                for k in ["gradient method (OTPredictor)", "uniform", "size-proportional", best_single,
                          "gradient method (linear baseline)"]:
                    r = rows[k]
                    label = f"best {k}" if k == best_single else k
                    print(f"   N={N:4d} {label:38s} p={np.round(r['ratios'], 2).tolist()!s:20s} measured "
                          f"{100 * r['measured'].mean():6.2f} ± {100 * r['measured'].std(ddof=1):4.2f}   predicted "
                          f"{100 * r['predicted']:6.2f}")
    out = {}
    for N in runners:
        rival = max(simple[N], key=lambda k: simple[N][k][1].mean())
        out[N] = {"simple": {k: {"ratios": p.tolist(), "measured": float(a.mean()), "std": float(a.std(ddof=1))}
                             for k, (p, a) in simple[N].items()}, "best_simple": rival}
        for name, lst in picks[N].items():
            diffs = np.array([r["measured"] - simple[N][rival][1] for r in lst])  # (designs, seeds), paired by seed
            # designs that pick one mixture share its measurement: the s.e. over seeds of the design mean
            per_seed = diffs.mean(axis=0)
            se_first, se_all = (100 * x.std(ddof=1) / np.sqrt(x.size) for x in (diffs[0], per_seed))
            distinct = len({tuple(r["ratios"]) for r in lst})
            print(f"   N={N}: gradient method ({name}) vs the best simple mixture ({rival}): design 1 "
                  f"{100 * diffs[0].mean():+.2f} ± {se_first:.2f} points (paired s.e.); over {len(lst)} designs "
                  f"({distinct} distinct picks) {100 * diffs.mean():+.2f} ± {se_all:.2f} (picks: "
                  f"{'; '.join(str(np.round(r['ratios'], 2).tolist()) for r in lst)})")
            out[N][name] = {"picks": [{"ratios": r["ratios"].tolist(), "measured": float(r["measured"].mean()),
                                       "predicted": r["predicted"]} for r in lst],
                            "difference_design1": float(diffs[0].mean()), "difference_mean": float(diffs.mean()),
                            "difference_se": se_all / 100}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 truth seeds, 10 repetitions")
    parser.add_argument("--seeds", type=int, default=None, help="truth seeds per mixture (default 10; quick 5)")
    parser.add_argument("--train-seeds", type=int, default=max(TRAININGS), help="seed pool of the fits (default 40)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per cell (default 40; quick 10)")
    parser.add_argument("--designs", type=int, default=8, help="purchase designs the selection is repeated on")
    parser.add_argument("--fresh", type=int, default=40, help="fresh seeds each selected mixture is trained with")
    parser.add_argument("--trainer", default="logistic", choices=["logistic", "linear", "mlp"])
    parser.add_argument("--out", default="runs/bench_ot_predictor", help="folder for the runs tables and results")
    args = parser.parse_args(argv)
    n_truth = args.seeds or (5 if args.quick else 10)
    args.truth_seeds = list(range(n_truth))
    args.train_seeds = list(range(TRAIN_SEED0, TRAIN_SEED0 + args.train_seeds))
    args.reps = args.reps or (10 if args.quick else 40)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    t0 = time.perf_counter()
    grid = simplex_grid(3, 10)
    sources, target, rev, big, r_rev, r_full, full = measure(args, grid)
    table, sigma, floor = stage1_table(args, sources, target, grid, rev)
    extra = extrapolation_table(args, sources, target, grid, rev, big)
    chosen = selection(args, sources, target, grid, rev, r_rev, r_full, full)
    results = {"setting": {"sources": NAMES, "trainer": args.trainer, "truth_seeds": args.truth_seeds,
                           "train_seeds": args.train_seeds, "reps": args.reps, "sizes": SIZES, "big": BIG},
               "stage1": table, "seed_std": sigma, "noise_floor_mae": floor, "extrapolation": extra,
               "selection": chosen, "seconds": time.perf_counter() - t0}
    write_json(Path(args.out) / "results.json", json.loads(json.dumps(results, default=float)))
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; results in {Path(args.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
