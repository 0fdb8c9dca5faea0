"""Do the intervals hold what they claim? Empirical coverage of nominal 90% intervals, and their width.

Every interval datamix draws is the bootstrap refits of a law spread by the law's residuals on its
own points (``datamix.laws.calibrated_interval``), widened past the fitted range by held-out-scale
calibration (``Law.predict_interval``). That calibration refits the law on its smaller points and
checks it on the larger ones, so it measures the error's growth only so far past the data
(``Law.calibrated_reach_``); rows farther out are flagged (``Law.calibrated``, curate's
``interval_calibrated``) and counted apart here. This prints, for each case the project can
measure, the share of held-out measurements inside the interval with its 90% Clopper-Pearson
range (few points: 6 of 6 inside is consistent with 90%), and the median width (relative to the
prediction), next to the parameter bootstrap alone (what the intervals were at first):

- data-constrained runs (datablations, C4 and OSCAR): ``DataConstrained`` and ``RepetitionPenalty``
  fitted on runs of <= 7 epochs, intervals for the 14- and 44-epoch runs; and ``DataConstrained``
  fitted on every other run, intervals for the rest (interpolation);
- the 182 published data-constrained runs (Muennighoff et al. 2023): fitted on those of <= 4
  epochs, intervals for the 125 with more;
- RegMix: a ``MixingLaw`` fitted on the 512 training mixtures of 1M-parameter runs, intervals for
  the 256 test mixtures at 1M; and at 1B, fitted on 3/4 of the 1B test mixtures, intervals for
  the other quarter, over 4 folds;
- curate / purchase runs: the verify stage's measured mixtures against the intervals the run
  predicted, read from the ``metrics.json`` of run directories given with ``--runs`` (e.g. after
  ``datamix run configs/quickstart.yaml --out runs/quickstart``).

Goal: coverage between 80% and 95% in each case.

    python benchmarks/coverage.py [--reference DIR] [--runs runs/quickstart runs/pydocs ...]
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from laws_data import datablations_182, datablations_curves, parse_args, regmix, table
from scipy.stats import binomtest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold

from datamix.laws import DataConstrained, MixingLaw, RepetitionPenalty

LEVEL = 0.9
COLS = ["N", "D", "U"]


def _coverage(inside: np.ndarray) -> list:
    """Points, coverage % and its 90% Clopper-Pearson range."""
    ci = binomtest(int(inside.sum()), inside.size).proportion_ci(confidence_level=LEVEL)
    return [inside.size, 100 * inside.mean(), f"{100 * ci.low:.0f}-{100 * ci.high:.0f}"]


def _rows(case: str, inside: np.ndarray, width: np.ndarray, calibrated: np.ndarray, boot: list) -> list[list]:
    """The case's row, then (when some rows lie past the calibration) its calibrated and past rows."""
    rows = [[case, *_coverage(inside), 100 * np.nanmedian(width), *boot]]
    if not calibrated.all():
        for name, m in (("calibrated", calibrated), ("past the calibration", ~calibrated)):
            if m.any():
                rows.append([f"  {name}", *_coverage(inside[m]), 100 * np.nanmedian(width[m]), "", ""])
    return rows


def _law_points(law, X, y) -> tuple[np.ndarray, ...]:
    """Per held-out point: inside the calibrated interval, its relative width, calibrated, inside the
    bootstrap-only interval and its relative width."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rows past the calibration: counted apart below
        lo, hi = law.predict_interval(X, level=LEVEL)
    pred = law.predict(X)
    boot = np.array([type(law).from_params(p, **_hyper(law)).predict(np.asarray(X)) for p in law.bootstrap_params()])
    b_lo, b_hi = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    return (lo <= y) & (y <= hi), (hi - lo) / pred, law.calibrated(X), (b_lo <= y) & (y <= b_hi), (b_hi - b_lo) / pred


def _law_rows(case: str, points: tuple[np.ndarray, ...]) -> list[list]:
    """Rows of a case from :func:`_law_points` (of one fit, or concatenated over folds)."""
    inside, width, calibrated, b_inside, b_width = points
    return _rows(case, inside, width, calibrated, [100 * b_inside.mean(), 100 * np.median(b_width)])


def _hyper(law) -> dict:
    return {"form": law.form} if hasattr(law, "form") else {}


def _fit(law, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return law.fit(X, y)


def law_cases(ref: Path) -> list[list]:
    rows = []
    finals = datablations_curves(ref).sort_values("D").groupby(["data", "N", "epochs"]).tail(1)
    for data in ("c4", "oscar"):
        runs = finals[finals.data == data].sort_values(["N", "epochs"]).reset_index(drop=True)
        train, test = runs[runs.epochs <= 7], runs[runs.epochs >= 14]
        for law in (DataConstrained(n_bootstrap=20, seed=0), RepetitionPenalty(n_bootstrap=20, seed=0)):
            _fit(law, train[COLS], train.loss)
            rows += _law_rows(f"{data}, held-out 14-44 epochs, {type(law).__name__}",
                              _law_points(law, test[COLS], test.loss.to_numpy()))
        even = runs.index % 2 == 0
        law = _fit(DataConstrained(n_bootstrap=20, seed=0), runs[even][COLS], runs[even].loss)
        rows += _law_rows(f"{data}, every other run held out, DataConstrained",
                          _law_points(law, runs[~even][COLS], runs[~even].loss.to_numpy()))
    X, y = datablations_182(ref)
    few = (X.D / X.U <= 4 * 1.01).to_numpy()
    law = _fit(DataConstrained(n_bootstrap=20, seed=0), X[few], y[few])
    rows += _law_rows("182 published runs, > 4 epochs from <= 4, DataConstrained", _law_points(law, X[~few], y[~few]))
    X_train, y_train = regmix(ref, "train", "1m")
    X_test, y_test = regmix(ref, "test", "1m")
    law = _fit(MixingLaw(n_bootstrap=20, seed=0), X_train, y_train)
    rows += _law_rows("RegMix 1M, 256 test mixtures", _law_points(law, X_test, y_test))
    X, y = regmix(ref, "test", "1B")
    folds = [_law_points(_fit(MixingLaw(n_bootstrap=20, seed=0), X.iloc[fit], y[fit]), X.iloc[held], y[held])
             for fit, held in KFold(4, shuffle=True, random_state=0).split(X)]
    rows += _law_rows(f"RegMix 1B, {len(y)} test mixtures, 4-fold", tuple(map(np.concatenate, zip(*folds))))
    return rows


def run_cases(run_dirs: list[Path]) -> list[list]:
    """Verified mixtures of finished curate / purchase runs against the intervals they predicted."""
    rows = []
    for run in run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        if metrics.get("pipeline") == "purchase":
            points = [v for v in (metrics.get("compared") or {}).values() if "measured" in v and "interval" in v]
        else:
            points = [v for v in (metrics.get("verified") or {}).values() if isinstance(v, dict) and "measured" in v]
            points += [v[k] for v in (metrics.get("frontier_check") or {}).values() for k in ("plan", v["against"])]
        if not points:
            print(f"{run}: no verified mixtures with intervals")
            continue
        y, lo, hi, pred = np.array([(v["measured"], *v["interval"], v["predicted"]) for v in points], dtype=float).T
        calibrated = np.array([v.get("interval_calibrated", True) for v in points])
        width = np.where(pred != 0, (hi - lo) / np.where(pred != 0, np.abs(pred), 1.0), np.nan)
        rows += _rows(f"{metrics.get('pipeline')} verify: {run.name}", (lo <= y) & (y <= hi), width, calibrated,
                      ["-", "-"])
    return rows


def main() -> None:
    args = parse_args(__doc__, lambda ap: ap.add_argument("--runs", type=Path, nargs="*", default=[],
                                                        help="finished curate or purchase run directories"))
    rows = law_cases(args.reference) + run_cases(args.runs)
    print(table(rows, ["case", "points", "coverage %", "90% range of coverage %", "median width %",
                       "bootstrap-only coverage %",
                       "bootstrap-only width %"], f"Nominal {LEVEL:.0%} intervals: share of held-out measurements inside"))
    print("goal: coverage between 80% and 95% in every case")


if __name__ == "__main__":
    main()
