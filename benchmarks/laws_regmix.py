"""RegMix: rank held-out mixtures' Pile-CC loss with a MixingLaw fitted on 512 mixtures (1M params).

All models are fitted on the 512 training mixtures of 1M-parameter runs and rank the test
mixtures of 1M (256 runs), 60M (256 runs, the same mixtures) and 1B (64 runs, other mixtures)
models by Spearman correlation with the measured Pile-CC validation loss; the acceptance target is
>= 0.97 at 1M. Baselines, in the same run: linear regression and gradient boosting (scikit-learn's,
in place of the paper's LightGBM). Published (Liu et al. 2024, RegMix): LightGBM 0.989 at 1M
(early-stopped on the test runs), linear 0.90 / 0.89 / 0.88.

    python benchmarks/laws_regmix.py [--reference DIR] [--components 1 2 3]
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from laws_data import parse_args, regmix, table
from scipy.optimize import minimize
from scipy.stats import spearmanr
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression

from datamix.laws import MixingLaw

SIZES = ("1m", "60m", "1B")
PUBLISHED = {"LightGBM (published)": (0.989, None, None), "linear (published)": (0.90, 0.89, 0.88)}


def main() -> None:
    args = parse_args(__doc__, lambda ap: ap.add_argument("--components", type=int, nargs="+", default=[1, 2, 3],
                                                        help="MixingLaw n_components to run"))
    X_train, y_train = regmix(args.reference, "train", "1m")
    tests = {s: regmix(args.reference, "test", s) for s in SIZES}
    models = {f"MixingLaw(n_components={k})": MixingLaw(n_components=k) for k in args.components}
    models.update({
        "LinearRegression": LinearRegression(),
        "GradientBoostingRegressor": GradientBoostingRegressor(random_state=0),
        "HistGradientBoostingRegressor": HistGradientBoostingRegressor(random_state=0),
    })
    rows, rows64 = [], []
    for name, model in models.items():
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X_train, y_train)
        seconds = time.perf_counter() - t
        note = "not converged (best state)" if any(issubclass(w.category, ConvergenceWarning) for w in caught) else ""
        rho = [spearmanr(model.predict(X), y)[0] for X, y in tests.values()]
        rho64 = [spearmanr(model.predict(X.iloc[:64]), y[:64])[0] for X, y in tests.values()]
        rows.append([name, *rho, seconds, note])
        rows64.append([name, *rho64])
    for name, values in PUBLISHED.items():
        rows.append([name, *(v if v is not None else "-" for v in values), "-", ""])
    n_test = "/".join(str(len(y)) for _, y in tests.values())
    print(table(rows, ["model", "1M", "60M", "1B", "fit s", "note"],
                f"Spearman of predicted vs measured Pile-CC loss, all test mixtures ({n_test})"))
    print(table(rows64, ["model", "1M", "60M", "1B"], "Same, first 64 test mixtures of each size"))
    best = max((r for r in rows if r[0].startswith("MixingLaw")), key=lambda r: r[1])
    print(f"\nbest MixingLaw at 1M: {best[0]} with Spearman {best[1]:.4f} (target >= 0.97). The default single "
          "exponential c + k exp(t.r) is monotone in one linear index t.r, which caps how well it can rank.")
    print("a linear index trained to rank the training pairs (pairwise logistic loss) ranks the 1M test "
          f"mixtures with Spearman {pairwise_rank_index(X_train.to_numpy(), y_train, *tests['1m']):.4f}: "
          "an estimate of the ceiling of any single-exponential law on these data.")


def pairwise_rank_index(X, y, X_test, y_test, *, margin=0.02, scale=5.0) -> float:
    """Test Spearman of a linear index t fitted to order the training pairs (|y_i - y_j| > margin)."""
    i, j = np.nonzero(np.abs(y[:, None] - y[None, :]) > margin)
    sign, dX = np.sign(y[i] - y[j]), X[i] - X[j]

    def loss(t):
        z = -scale * sign * (dX @ t)
        sig = 0.5 * (1 + np.tanh(z / 2))  # logistic(z), overflow-free
        return np.mean(np.logaddexp(0, z)) + 1e-4 * t @ t, (-scale * sign * sig) @ dX / len(z) + 2e-4 * t

    t = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x
    return spearmanr(X_test.to_numpy() @ t, y_test)[0]


if __name__ == "__main__":
    main()
