"""Sorscher et al. (2022)'s teacher-student perceptron, reproduced with datamix.prune.select.

Two tables:

1. At a fixed kept fraction, test error of keep-easy, keep-hard and random pruning as the pool
   grows: keep-easy wins when data is scarce, keep-hard when it is abundant.
2. At each kept size, the best (fraction, direction) drawn from a larger pool against random
   pruning at the same size (= no pruning), with power laws error = c + a * alpha^-b fitted to
   both: the pruned frontier falls faster with data (larger b).

Usage::

    python benchmarks/prune_theory.py               # d = 100, 5 seeds (about a minute)
    python benchmarks/prune_theory.py --d 30 --seeds 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from datamix.prune.theory import best_fraction_frontier, frontier_exponents, teacher_student_pruning


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d", type=int, default=100, help="input dimension")
    parser.add_argument("--seeds", type=int, default=5, help="teachers per setting")
    parser.add_argument("--fraction", type=float, default=0.2, help="kept fraction of table 1")
    parser.add_argument("--probe-angle", type=float, default=0.0,
                        help="angle (radians) between the pruning probe and the teacher")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    common = dict(n_features=args.d, n_seeds=args.seeds, probe_angle=args.probe_angle)
    t0 = time.perf_counter()

    alphas = [0.5, 1, 2, 4, 8, 16, 32]
    table = teacher_student_pruning(alphas, [args.fraction], seed=args.seed, **common)
    err = table.groupby(["alpha_tot", "keep"])["error"].agg(["mean", "std"]).unstack("keep")
    print(f"1. test error at kept fraction {args.fraction} (d={args.d}, {args.seeds} teachers, "
          f"probe angle {args.probe_angle}); mean +- std")
    print(f"{'alpha_tot':>9}{'keep easy':>18}{'keep hard':>18}{'random':>18}   winner")
    for a in alphas:
        cells = [f"{err.loc[a, ('mean', k)]:.4f} +- {err.loc[a, ('std', k)]:.4f}"
                 for k in ("easy", "hard", "random")]
        means = {k: err.loc[a, ("mean", k)] for k in ("easy", "hard", "random")}
        print(f"{a:>9g}" + "".join(f"{c:>18}" for c in cells) + f"   {min(means, key=means.get)}")

    kept = [0.5, 1, 2, 4, 8]
    frontier = best_fraction_frontier(kept, [0.1, 0.2, 0.4, 0.6, 0.8], seed=args.seed + 1,
                                      **common)
    best = frontier_exponents(frontier)
    print("\n2. error vs kept size alpha_prune = kept / d: best fraction and direction "
          "(pool = alpha_prune * d / f) against random pruning")
    print(f"{'alpha_prune':>11}{'random':>10}{'best':>10}{'best f':>8}{'keep':>6}{'ratio':>8}")
    for a, row in best.iterrows():
        print(f"{a:>11g}{row.random_error:>10.4f}{row.best_error:>10.4f}{row.best_fraction:>8g}"
              f"{row.best_keep:>6}{row.random_error / row.best_error:>8.1f}")
    exps = best.attrs["exponents"]
    print(f"\nfitted exponent b of error = c + a * alpha_prune^-b:   random {exps['random']:.3f}"
          f"   best pruning {exps['best']:.3f}   (pruning steeper: {exps['best'] > exps['random']})")
    print(f"[{time.perf_counter() - t0:.0f} s]")
    return np.array([exps["random"], exps["best"]])


if __name__ == "__main__":
    main()
