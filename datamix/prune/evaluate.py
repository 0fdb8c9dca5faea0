"""Score pruning metrics: train a proxy on every kept subset and compare with random pruning."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from tqdm.auto import tqdm

from datamix.index._checks import check_embeddings, check_int
from datamix.laws import PowerLaw
from datamix.prune._checks import check_fraction, check_labels, check_scores, tqdm_disable
from datamix.prune.select import BALANCES, KEEPS, select
from datamix.proxy.trainer import ProxyResult, train_proxy

__all__ = ["best_per_size", "default_trainer", "evaluate_metrics", "fit_scaling",
           "plot_metrics", "summarize_metrics"]

logger = logging.getLogger(__name__)

#: Column order of the tidy table returned by :func:`evaluate_metrics`.
COLUMNS = ["metric", "keep", "fraction", "n_kept", "seed", "score", "loss"]

Trainer = Callable[..., "ProxyResult | float"]


def default_trainer(X_train, y_train, X_test, y_test, *, seed: int) -> ProxyResult:
    """Linear probe, 30 epochs and at least 300 Adam steps, so small subsets are trained too."""
    return train_proxy(X_train, y_train, X_test, y_test, model="linear", epochs=30,
                       min_steps=300, seed=seed)


def evaluate_metrics(
    metrics: Mapping[str, npt.ArrayLike],
    train: tuple[npt.ArrayLike, npt.ArrayLike],
    test: tuple[npt.ArrayLike, npt.ArrayLike],
    fractions: Sequence[float],
    *,
    trainer: Trainer | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    keeps: Sequence[str] = ("easy", "hard", "ccs"),
    balance: str = "none",
    progress: bool | None = None,
    **select_kwargs,
) -> pd.DataFrame:
    """Train a proxy on each metric x direction x kept fraction x seed, and on random subsets.

    Every selection keeps exactly ``round(fraction * n_train)`` samples, so each metric is
    compared with random pruning at the same size and seed.

    Parameters
    ----------
    metrics : mapping of str to array-like of shape (n_train,)
        Difficulty scores (higher = harder) of the training samples, by metric name.
    train : tuple (X, y)
        Training embeddings (n_train, n_features) and labels (n_train,).
    test : tuple (X, y)
        Target set the proxy is measured on.
    fractions : sequence of float
        Kept fractions in (0, 1].
    trainer : callable, optional
        ``trainer(X_train, y_train, X_test, y_test, *, seed)`` returning a
        :class:`~datamix.proxy.ProxyResult` (its ``accuracy`` is the score) or a float score,
        higher = better. Default :func:`default_trainer`.
    seeds : sequence of int, default=(0, 1, 2)
        Seeds for training (and for random and CCS selections); at least 3 give a spread.
    keeps : sequence of {"easy", "hard", "ccs"}, default=("easy", "hard", "ccs")
        Directions evaluated for every metric; ``"random"`` is always run once per fraction.
    balance : {"none", "proportional", "equal"}, default="none"
        Class balance of the selections (with the training labels), see :func:`select`.
    progress : bool, optional
        Progress bar over trainings; default: only on a terminal.
    **select_kwargs
        ``beta``, ``n_strata`` for CCS, passed to :func:`select`.

    Returns
    -------
    table : DataFrame
        Tidy, one row per training: ``metric, keep, fraction, n_kept, seed, score, loss``
        (``loss`` NaN when the trainer returns a float); the random baseline has
        ``metric == keep == "random"``. Summarise with :func:`summarize_metrics`,
        :func:`best_per_size`, :func:`fit_scaling` and :func:`plot_metrics`.

    Raises
    ------
    ValueError
        For scores of the wrong length or non-finite, fractions outside (0, 1], unknown keeps.
    """
    X_train = check_embeddings(train[0], name="train X")
    y_train = check_labels(train[1], X_train.shape[0], name="train y", against="train X")
    X_test = check_embeddings(test[0], name="test X")
    y_test = check_labels(test[1], X_test.shape[0], name="test y", against="test X")
    if not metrics:
        raise ValueError("metrics must map at least one name to scores")
    scores = {}
    for name, s in metrics.items():
        s = check_scores(s, name=f"metrics[{name!r}]")
        if s.size != X_train.shape[0]:
            raise ValueError(f"metrics[{name!r}] has {s.size} scores but train has "
                             f"{X_train.shape[0]} samples; pass one score per training sample")
        if name == "random":
            raise ValueError("'random' is reserved for the baseline; rename that metric")
        scores[name] = s
    fractions = [check_fraction(f) for f in fractions]
    if not fractions:
        raise ValueError("fractions must hold at least one kept fraction")
    for keep in keeps:
        if keep not in KEEPS or keep == "random":
            raise ValueError(f"keeps must be among {tuple(k for k in KEEPS if k != 'random')}, "
                             f"got {keep!r}")
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    seeds = [check_int(s, "seeds entry", low=0) for s in seeds]
    if len(seeds) < 3:
        logger.warning("evaluate_metrics: %d seed(s) give no reliable spread; use at least 3",
                       len(seeds))
    return _evaluate_impl(scores, X_train, y_train, X_test, y_test, fractions,
                          trainer=trainer or default_trainer, seeds=seeds, keeps=list(keeps),
                          balance=balance, progress=progress, select_kwargs=select_kwargs)


def _evaluate_impl(scores, X_train, y_train, X_test, y_test, fractions, *, trainer, seeds, keeps,
                   balance, progress, select_kwargs):
    """The evaluation loop on validated input."""
    jobs = [("random", "random", None)] + [(m, k, s) for m, s in scores.items() for k in keeps]
    labels = None if balance == "none" else y_train
    rows = []
    total = len(jobs) * len(fractions) * len(seeds)
    with tqdm(total=total, desc="evaluate_metrics", unit="run",
              disable=tqdm_disable(progress)) as bar:
        for metric, keep, s in jobs:
            for fraction in fractions:
                for seed in seeds:
                    idx = select(np.zeros(X_train.shape[0]) if s is None else s, fraction,
                                 keep=keep, labels=labels, balance=balance, seed=seed,
                                 **select_kwargs)
                    out = trainer(X_train[idx], y_train[idx], X_test, y_test, seed=seed)
                    score, loss = ((out.accuracy, out.loss) if isinstance(out, ProxyResult)
                                   else (float(out), np.nan))
                    rows.append((metric, keep, fraction, idx.size, seed, score, loss))
                    bar.update()
    table = pd.DataFrame(rows, columns=COLUMNS)
    logger.info("evaluate_metrics: %d trainings, best per size:\n%s", len(table),
                best_per_size(table).to_string())
    return table


def summarize_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of each (metric, keep, fraction), against random at that size.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`evaluate_metrics`.

    Returns
    -------
    summary : DataFrame
        One row per (metric, keep, fraction) with ``n_kept, n_seeds, mean, std, random_mean,
        random_std, delta, delta_std, beats_random``. ``delta`` is the mean over seeds of
        ``score - random score`` of the same seed and ``delta_std`` its standard deviation;
        ``beats_random`` is True when ``delta`` exceeds one standard error of those paired
        differences, ``delta_std / sqrt(n_seeds)``.
    """
    random = table[table["metric"] == "random"][["fraction", "seed", "score"]]
    merged = table.merge(random.rename(columns={"score": "random_score"}),
                         on=["fraction", "seed"], how="left")
    merged["diff"] = merged["score"] - merged["random_score"]
    summary = merged.groupby(["metric", "keep", "fraction"], as_index=False).agg(
        n_kept=("n_kept", "first"),
        n_seeds=("seed", "nunique"),
        mean=("score", "mean"),
        std=("score", "std"),
        random_mean=("random_score", "mean"),
        random_std=("random_score", "std"),
        delta=("diff", "mean"),
        delta_std=("diff", "std"),
    )
    stderr = summary["delta_std"] / np.sqrt(summary["n_seeds"])
    summary["beats_random"] = (summary["metric"] != "random") & (summary["delta"] > stderr.fillna(0))
    return summary.sort_values(["fraction", "mean"], ascending=[True, False], ignore_index=True)


def best_per_size(table: pd.DataFrame) -> pd.DataFrame:
    """The winning metric and direction at each kept fraction (highest mean score).

    Returns
    -------
    best : DataFrame
        One row per fraction: ``fraction, n_kept, metric, keep, mean, std, random_mean, delta,
        delta_std, beats_random``.
    """
    summary = summarize_metrics(table)
    pruned = summary[summary["metric"] != "random"]
    best = pruned.loc[pruned.groupby("fraction")["mean"].idxmax()]
    return best[["fraction", "n_kept", "metric", "keep", "mean", "std", "random_mean", "delta",
                 "delta_std", "beats_random"]].reset_index(drop=True)


def fit_scaling(table: pd.DataFrame) -> pd.DataFrame:
    """Power law :math:`1 - \\text{score} = c + a n^{-b}` in kept size per (metric, keep).

    Only meaningful when the score is an accuracy. Pairs with fewer than three kept sizes, or
    with a perfect score, are skipped.

    Returns
    -------
    fits : DataFrame
        One row per (metric, keep): ``a, b, c``.
    """
    mean = table.groupby(["metric", "keep", "n_kept"], as_index=False)["score"].mean()
    rows = []
    for (metric, keep), g in mean.groupby(["metric", "keep"]):
        error = 1.0 - g["score"].to_numpy()
        if g.shape[0] < 3 or (error <= 0).any():
            continue
        law = PowerLaw().fit(g["n_kept"].to_numpy(dtype=np.float64), error)
        rows.append({"metric": metric, "keep": keep, **law.params_})
    return pd.DataFrame(rows, columns=["metric", "keep", "a", "b", "c"])


def plot_metrics(table: pd.DataFrame) -> Figure:
    """Score vs kept size, one panel per direction, every metric against random.

    Lines are means over seeds, bands one standard deviation. The figure is built without
    pyplot (no global state); save it with ``fig.savefig(path)``.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`evaluate_metrics`.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    summary = summarize_metrics(table)
    random = summary[summary["metric"] == "random"].sort_values("n_kept")
    keeps = [k for k in KEEPS if k != "random" and k in set(summary["keep"])]
    fig = Figure(figsize=(4.5 * max(1, len(keeps)), 3.8), layout="constrained")
    axes = fig.subplots(1, max(1, len(keeps)), sharey=True, squeeze=False)[0]
    for ax, keep in zip(axes, keeps or ["random"]):
        ax.plot(random["n_kept"], random["mean"], "k--", lw=2, label="random")
        ax.fill_between(random["n_kept"], random["mean"] - random["std"].fillna(0),
                        random["mean"] + random["std"].fillna(0), color="k", alpha=0.1)
        for metric, g in summary[summary["keep"] == keep].groupby("metric"):
            g = g.sort_values("n_kept")
            line, = ax.plot(g["n_kept"], g["mean"], marker="o", ms=3, label=metric)
            ax.fill_between(g["n_kept"], g["mean"] - g["std"].fillna(0),
                            g["mean"] + g["std"].fillna(0), color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("kept samples")
        ax.set_title(f"keep {keep}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test score")
    axes[-1].legend(fontsize=8)
    return fig
