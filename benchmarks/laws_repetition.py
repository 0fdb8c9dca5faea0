"""Repetition beyond the published law: predict 14- and 44-epoch losses from runs of <= 7 epochs.

Data: the datablations repetition runs (C4 and OSCAR; 2.8B, 4.2B, 8.7B parameters; 1-44 epochs of
a fixed token budget per model). Each law is fitted, per dataset, on runs of <= 7 epochs and scored
(mean absolute relative error) on the 14- and 44-epoch runs:

A. final losses (the quantity the laws describe): 18 training runs, 6 test runs per dataset;
B. loss curves: every checkpoint past 10% of training of the <= 7-epoch runs, scored on the
   checkpoints that have seen 14-44 epochs (mid-schedule points: the laws know nothing of the
   learning-rate schedule, so this is the harder, noisier comparison).

Laws: the published data-constrained law with its published parameters (fitted by Muennighoff et
al. on C4 final losses), the same form refitted on the split (``DataConstrained``), and datamix's
repetition-aware ``RepetitionPenalty`` (Chinchilla plus K R_D^gamma).

    python benchmarks/laws_repetition.py [--reference DIR] [--n-starts 8]
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from laws_data import datablations_curves, parse_args, table
from sklearn.exceptions import ConvergenceWarning

from datamix.laws import DataConstrained, RepetitionPenalty

COLS = ["N", "D", "U"]
PUBLISHED = {"E": np.exp(0.6254804), "A": np.exp(6.255414), "B": np.exp(7.3049974), "alpha": 0.3526596,
             "beta": 0.3526596, "R_D_star": 15.387756, "R_N_star": 5.309743}


def laws(n_starts):
    return {
        "published law, published params": lambda: DataConstrained.from_params(PUBLISHED),
        "published form refitted (DataConstrained)": lambda: DataConstrained(n_starts=n_starts),
        "datamix RepetitionPenalty": lambda: RepetitionPenalty(n_starts=n_starts),
    }


def evaluate(train, test, n_starts):
    """Fit every law on ``train``; return {name: (law, test error, fit seconds)}."""
    out = {}
    for name, make in laws(n_starts).items():
        law, t = make(), time.perf_counter()
        if not hasattr(law, "params_"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                law.fit(train[COLS], train.loss)
        out[name] = (law, -law.score(test[COLS], test.loss), time.perf_counter() - t)
    return out


def main() -> None:
    args = parse_args(__doc__, lambda ap: ap.add_argument(
        "--n-starts", type=int, default=None, help="L-BFGS-B starts per fit (default: the full grid)"))
    curves = datablations_curves(args.reference)
    finals = curves.sort_values("D").groupby(["data", "N", "epochs"]).tail(1)

    summary, detail = [], []
    for data in ("c4", "oscar"):
        runs = finals[finals.data == data].sort_values(["N", "epochs"])
        train, test = runs[runs.epochs <= 7], runs[runs.epochs >= 14]
        results = evaluate(train, test, args.n_starts)
        for name, (law, err, sec) in results.items():
            summary.append(["A finals", data, name, len(train), len(test), 100 * err, sec])
        preds = {name: law.predict(test[COLS]) for name, (law, _, _) in results.items()}
        for i, (_, row) in enumerate(test.iterrows()):
            detail.append([data, f"{row.N / 1e9:.1f}B", int(row.epochs), row.loss, *(p[i] for p in preds.values())])

        pts = curves[(curves.data == data) & (curves.frac >= 0.1)]
        train, test = pts[pts.epochs <= 7], pts[(pts.epochs >= 14) & (pts.seen >= 14 - 1e-9)]
        for name, (law, err, sec) in evaluate(train, test, args.n_starts).items():
            summary.append(["B curves", data, name, len(train), len(test), 100 * err, sec])

    print(table(summary, ["protocol", "data", "law", "train pts", "test pts", "mean rel. err % (14-44 ep)", "fit s"],
                "Error at 14-44 epochs of laws fitted on runs of <= 7 epochs"))
    print(table(detail, ["data", "N", "epochs", "measured", *(n.split(" (")[0] for n in laws(None))],
                "A. final loss of the 14- and 44-epoch runs: measured vs predicted"))
    for protocol in ("A finals", "B curves"):
        for data in ("c4", "oscar"):
            errs = {r[2]: r[5] for r in summary if r[0] == protocol and r[1] == data}
            ours, published = errs["datamix RepetitionPenalty"], errs["published law, published params"]
            print(f"{protocol} {data}: datamix {ours:.2f}% vs published law {published:.2f}% (published params) "
                  f"and {errs['published form refitted (DataConstrained)']:.2f}% (refitted)")


if __name__ == "__main__":
    main()
