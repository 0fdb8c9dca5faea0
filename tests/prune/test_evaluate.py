"""evaluate_metrics: bookkeeping against random at equal size, summaries, plot, digits run."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.datasets import load_digits

from datamix.prune import (
    best_per_size,
    evaluate_metrics,
    fit_scaling,
    plot_metrics,
    prototype_scores,
    summarize_metrics,
)


def share_of_ones(X_train, y_train, X_test, y_test, *, seed):
    """A fake trainer whose 'score' is the share of label 1 in the kept set, plus seed noise."""
    return float(np.mean(y_train == 1)) + 1e-3 * seed


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (rng.random(200) < 0.3).astype(int)
    return X, y


def test_bookkeeping_and_equal_sizes(toy):
    X, y = toy
    metrics = {"oracle": y + 0.01 * np.arange(200), "index": np.arange(200.0)}
    table = evaluate_metrics(metrics, (X, y), (X, y), [0.1, 0.5], trainer=share_of_ones,
                             seeds=(0, 1, 2), keeps=("hard", "easy"))
    assert list(table.columns) == ["metric", "keep", "fraction", "n_kept", "seed", "score", "loss"]
    assert len(table) == (1 + 2 * 2) * 2 * 3
    assert table.groupby("fraction")["n_kept"].nunique().eq(1).all()
    np.testing.assert_array_equal(sorted(table["n_kept"].unique()), [20, 100])
    hard = table[(table.metric == "oracle") & (table.keep == "hard") & (table.fraction == 0.1)]
    np.testing.assert_allclose(hard["score"], [1.0, 1.001, 1.002])
    summary = summarize_metrics(table)
    row = summary[(summary.metric == "oracle") & (summary.keep == "hard") & (summary.fraction == 0.1)]
    rnd = table[(table.metric == "random") & (table.fraction == 0.1)].sort_values("seed")["score"]
    np.testing.assert_allclose(row["delta"], np.mean(hard["score"].to_numpy() - rnd.to_numpy()))
    assert bool(row["beats_random"].iloc[0])
    best = best_per_size(table)
    assert list(best["metric"]) == ["oracle", "oracle"] and list(best["keep"]) == ["hard", "hard"]


def test_fit_scaling_recovers_a_planted_power_law():
    n = np.array([50, 100, 200, 400, 800, 1600])
    rows = [("m", "hard", f, k, s, 1 - (0.02 + 2.0 * k ** -0.5), np.nan)
            for f, k in zip(n / 1600, n) for s in range(3)]
    table = pd.DataFrame(rows, columns=["metric", "keep", "fraction", "n_kept", "seed", "score", "loss"])
    fit = fit_scaling(table).iloc[0]
    np.testing.assert_allclose([fit.a, fit.b, fit.c], [2.0, 0.5, 0.02], rtol=1e-3)


def test_digits_run_has_spread_and_plots():
    X, y = load_digits(return_X_y=True)
    Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
    metrics = {"prototypes": prototype_scores(Xtr, 10, seed=0)}
    table = evaluate_metrics(metrics, (Xtr, ytr), (Xte, yte), [0.2, 0.6], seeds=(0, 1, 2),
                             keeps=("hard", "easy", "ccs"), progress=False)
    assert len(table) == (1 + 3) * 2 * 3
    summary = summarize_metrics(table)
    assert (summary["n_seeds"] == 3).all()
    assert (summary.loc[summary.metric == "random", "std"] > 0).all()
    assert (table["score"] > 0.7).all()  # a linear probe on 240+ digits: observed >= 0.85
    fig = plot_metrics(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


def test_bad_input(toy):
    X, y = toy
    with pytest.raises(ValueError, match=r"metrics\['m'\] has 199 scores but train has 200"):
        evaluate_metrics({"m": np.zeros(199)}, (X, y), (X, y), [0.5], trainer=share_of_ones)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        evaluate_metrics({"m": np.zeros(200)}, (X, y), (X, y), [0.0], trainer=share_of_ones)
    with pytest.raises(ValueError, match="'random' is reserved"):
        evaluate_metrics({"random": np.zeros(200)}, (X, y), (X, y), [0.5], trainer=share_of_ones)
    with pytest.raises(ValueError, match=r"train y has shape \(10,\) but train X has 200 samples"):
        evaluate_metrics({"m": np.zeros(200)}, (X, y[:10]), (X, y), [0.5], trainer=share_of_ones)
    with pytest.raises(ValueError, match="keeps must be among"):
        evaluate_metrics({"m": np.zeros(200)}, (X, y), (X, y), [0.5], keeps=("random",))
