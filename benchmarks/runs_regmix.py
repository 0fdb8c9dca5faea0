"""RegMix 1M -> 1B: rank and pick the 64 held-out 1B mixtures from the 512 1M-parameter runs.

For each of the 13 validation domains (the objective: that domain's loss), every candidate of the
runs pipeline (MixingLaw with 1 and 2 components, gradient boosting = scikit-learn's
HistGradientBoostingRegressor with default settings, linear regression, and the rank ensemble of
the better law and boosting) is fitted on the 512 runs of 1M-parameter models, and ranks the 64
test mixtures trained at 1B parameters (Spearman with the measured loss); its top pick's regret is
the measured loss of the mixture it predicts best minus the best of the 64. ``auto`` is the
pipeline's choice by 5-fold cross-validation on the 1M runs: its ranker's Spearman and its
picker's regret; ``auto scale`` is ``select: scale``: the ranker is the candidate (fitted on the 1M
runs) that ranks RegMix's 256 60M-parameter test runs best, the picker stays the k-fold one. The
time is that of scoring, choosing and refitting on 2 cores.

    python benchmarks/runs_regmix.py [--reference DIR] [--folds 5]
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from laws_data import parse_args, table
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from datamix.predict.runs import CANDIDATES, make_candidate, select_mixture_predictor


def load(ref, split: str, size: str):
    m = pd.read_csv(ref / "regmix" / f"{split}_mixture_{size}.csv")
    loss = pd.read_csv(ref / "regmix" / f"{split}_pile_loss_{size}.csv")
    d = m.merge(loss, on="index")
    return d[m.columns[1:]].to_numpy(), d, [c for c in loss.columns if c != "index"]


def main() -> None:
    args = parse_args(__doc__, lambda ap: ap.add_argument("--folds", type=int, default=5))
    X, train, domains = load(args.reference, "train", "1m")
    X_test, test, _ = load(args.reference, "test", "1B")
    X_mid, mid, _ = load(args.reference, "test", "60m")
    rho, regret, seconds, chosen = {}, {}, [], []
    for dom in domains:
        y, y_test = train[dom].to_numpy(), test[dom].to_numpy()
        best = y_test.min()
        t = time.perf_counter()
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            sel = select_mixture_predictor(X, y, folds=args.folds, seed=0)
            models = {c: make_candidate(c, law=sel.law).fit(X, y) for c in dict.fromkeys([sel.ranker, sel.picker])}
            seconds.append(time.perf_counter() - t)  # what the pipeline does: score, choose, refit the two
            models |= {c: make_candidate(c, law=sel.law).fit(X, y) for c in CANDIDATES if c not in models}
        for c, m in models.items():
            p = m.predict(X_test)
            rho.setdefault(c, []).append(spearmanr(p, y_test)[0])
            regret.setdefault(c, []).append(y_test[np.argmin(p)] - best)
        rho.setdefault("auto", []).append(rho[sel.ranker][-1])
        regret.setdefault("auto", []).append(y_test[np.argmin(models[sel.picker].predict(X_test))] - best)
        at_mid = {c: spearmanr(m.predict(X_mid), mid[dom])[0] for c, m in models.items()}
        scaled = max(CANDIDATES, key=lambda c: round(at_mid[c], 12))  # ties: the first (laws first)
        rho.setdefault("auto scale", []).append(rho[scaled][-1])
        regret.setdefault("auto scale", []).append(regret["auto"][-1])
        chosen.append(f"{sel.ranker}/{sel.picker} {scaled}")
        print(f"{dom}: ranker {sel.ranker}, picker {sel.picker} ({seconds[-1]:.1f} s)", flush=True)
    short = [d.removeprefix("metric/the_pile_").removesuffix("_val_loss") for d in domains]
    names = list(CANDIDATES) + ["auto", "auto scale"]
    rows = [[s] + [rho[c][i] for c in names] + [chosen[i]] for i, s in enumerate(short)]
    rows.append(["mean"] + [float(np.mean(rho[c])) for c in names] + [""])
    print(table(rows, ["domain", *names, "auto: ranker/picker, scale ranker"], "Spearman on the 64 1B test mixtures (fit: 512 1M runs)"))
    rows = [[s] + [regret[c][i] for c in names] for i, s in enumerate(short)]
    rows.append(["mean"] + [float(np.mean(regret[c])) for c in names])
    rows.append(["top pick missed"] + [int(np.sum(np.array(regret[c]) > 0)) for c in names])
    print(table(rows, ["domain", *names], "Regret of the top pick among the 64 1B mixtures (loss above the best)"))
    print(f"\nauto: score {len(CANDIDATES)} candidates by {args.folds}-fold CV, choose, refit ranker and picker: "
          f"{np.mean(seconds):.1f} s per domain on average (max {np.max(seconds):.1f} s), 512 runs x 17 sources")


if __name__ == "__main__":
    main()
