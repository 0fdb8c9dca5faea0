"""Figures of a curation decision (matplotlib, Agg backend; no display needed).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes one to a PNG
atomically and closes it.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["plot_law_fit", "plot_predicted_vs_measured", "plot_frontier", "plot_budget_curve", "plot_mixture",
           "save_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 110) -> str:
    """Write ``fig`` as PNG to ``path`` atomically (metadata stripped, so a rerun gives the same bytes)."""
    from datamix.io import atomic_write

    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, metadata={"Software": None}))
    _plt().close(fig)
    return str(path)


def plot_law_fit(law, X: pd.DataFrame, y: Sequence[float], *, groups: Mapping[str, Sequence[str]] | None = None,
                 level: float = 0.9, ylabel: str = "error"):
    """Fitted QQT law against its data: measured points, fitted curves and interval bands
    (:meth:`~datamix.laws.base.Law.predict_interval`).

    Parameters
    ----------
    law : QualityQuantity
        Fitted on ``(X, y)``.
    X : DataFrame with columns pool, n, S
    y : array-like of shape (n_runs,)
    groups : dict of str to list of str, optional
        One panel per group (e.g. per source, its quality buckets); default one panel.
    level : float, default=0.9
        Coverage of the bands (skipped when the law has no bootstrap refits).
    """
    plt = _plt()
    X = pd.DataFrame(X).reset_index(drop=True)
    y = np.asarray(y, dtype=np.float64)
    pools = list(pd.unique(X["pool"].astype(str)))
    groups = dict(groups) if groups else {"pools": pools}
    n_panels = len(groups)
    cols = min(3, n_panels)
    rows = int(np.ceil(n_panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, members) in zip(axes.ravel(), groups.items()):
        for c, pool in enumerate(members):
            rows_p = X["pool"].astype(str) == pool
            if not rows_p.any():
                continue
            S = float(X.loc[rows_p, "S"].max())
            n_obs = X.loc[rows_p, "n"].to_numpy(dtype=np.float64)
            grid = np.geomspace(n_obs.min(), n_obs.max() * 1.5, 60)
            Xg = pd.DataFrame({"pool": pool, "n": grid, "S": S})
            color = colors[c % len(colors)]
            ax.scatter(n_obs, y[rows_p.to_numpy()], s=14, color=color, alpha=0.8, label=f"{pool} (S={S:.0f})")
            ax.plot(grid, law.predict(Xg), color=color, lw=1.4)
            if getattr(law, "_train", None) is not None:
                lo, hi = law.predict_interval(Xg, level=level)
                ax.fill_between(grid, lo, hi, color=color, alpha=0.15, lw=0)
            ax.axvline(S, color=color, ls=":", lw=0.8)
        ax.set(xscale="log", yscale="log", title=title, xlabel="samples seen n", ylabel=ylabel)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(f"QQT law fit: points, fit and {int(level * 100)}% intervals (bootstrap and residuals, wider past "
                 "the runs; dotted: one pass)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_predicted_vs_measured(df: pd.DataFrame, *, metric: str = "metric"):
    """Predicted vs measured with the y = x line.

    ``df`` columns: ``measured``, ``predicted``, optional ``lo``/``hi`` (interval), ``label`` (one
    marker series per label).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    df = pd.DataFrame(df)
    labels = df["label"] if "label" in df else pd.Series(["runs"] * len(df))
    for lab in pd.unique(labels):
        sub = df[labels == lab]
        if {"lo", "hi"} <= set(sub.columns) and sub[["lo", "hi"]].notna().all().all():
            err = np.vstack([sub["predicted"] - sub["lo"], sub["hi"] - sub["predicted"]]).clip(0)
            ax.errorbar(sub["measured"], sub["predicted"], yerr=err, fmt="D", ms=6, capsize=3, label=str(lab))
        else:
            ax.scatter(sub["measured"], sub["predicted"], s=16, alpha=0.75, label=str(lab))
    vals = np.concatenate([df["measured"].to_numpy(float), df["predicted"].to_numpy(float)])
    vals = vals[np.isfinite(vals)]
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
    ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), xlabel=f"measured {metric}",
           ylabel=f"predicted {metric}", title="predicted vs measured")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_frontier(frontier, *, chosen: float | None = None, metric: str = "metric", unit: str = "samples"):
    """Keep-fraction per source (top) and predicted metric (bottom) against compute in ``unit`` seen."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.2, 6.0), sharex=True)
    for j, s in enumerate(frontier.sources):
        if np.all(frontier.ratios[:, j] == 0):
            continue
        used = frontier.ratios[:, j] > 0
        q = np.where(used, frontier.keep_fractions[:, j], np.nan)
        ax1.plot(frontier.budgets, q, marker="o", ms=3, label=s)
    ax1.set(xscale="log", ylabel="keep-fraction (top share kept)", ylim=(0, 1.05),
            title="compute-aware filtering threshold (unused sources omitted)")
    ax1.legend(fontsize=7, ncol=2)
    ax2.plot(frontier.budgets, frontier.predicted, marker="o", ms=3, color="k")
    ax2.set(xscale="log", xlabel=f"compute budget ({unit} seen)", ylabel=f"predicted {metric}")
    if chosen is not None:
        for ax in (ax1, ax2):
            ax.axvline(chosen, color="tab:red", ls="--", lw=1)
        ax2.annotate("plan", (chosen, float(np.nanmax(frontier.predicted))), color="tab:red", fontsize=8)
    fig.tight_layout()
    return fig


def plot_budget_curve(df: pd.DataFrame, *, x: str, label: str, metric: str = "metric", chosen: float | None = None):
    """Predicted metric (with ``lo``/``hi`` band when given) against the budget column ``x`` (log
    scale), each point annotated with its ``label`` column (the decision at that budget)."""
    plt = _plt()
    df = pd.DataFrame(df)
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    if {"lo", "hi"} <= set(df.columns):
        ax.fill_between(df[x], df["lo"], df["hi"], alpha=0.2, label="interval")
    ax.plot(df[x], df["predicted"], marker="o", label=f"predicted {metric}")
    for _, row in df.iterrows():
        ax.annotate(str(row[label]), (row[x], row["predicted"]), fontsize=7, xytext=(3, 4), textcoords="offset points")
    if chosen is not None:
        ax.axvline(chosen, color="k", ls=":", lw=1, label="planned")
    ax.set(xscale="log", xlabel=x, ylabel=metric, title=f"best {label} per budget")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_mixture(plan):
    """The chosen mixture: ratio per source (bars), with keep-fraction and epochs written beside;
    a source with a ratio below ``UNUSED`` is labelled "unused" (grey)."""
    from datamix.report.report import UNUSED

    plt = _plt()
    names = list(plan.ratios)
    r = np.array([plan.ratios[n] for n in names])
    used = r >= UNUSED
    r = np.where(used, r, 0.0)
    fig, ax = plt.subplots(figsize=(6.2, 0.45 * len(names) + 1.4))
    ax.barh(names, r, color=np.where(used, "tab:blue", "lightgrey"))
    for i, n in enumerate(names):
        q = plan.keep_fractions.get(n, 1.0)
        e = plan.epochs.get(n, float("nan"))
        text = f"{r[i]:.3f}  keep {q:.2f}  {e:.2f} ep" if used[i] else "unused"
        ax.text(r[i] + 0.01, i, text, va="center", fontsize=8, color="black" if used[i] else "grey")
    ax.set(xlim=(0, max(1.0, float(r.max()) + 0.35)), xlabel="ratio", title="chosen mixture")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def plot_candidates(scores: pd.DataFrame):
    """Held-out Spearman (left) and top-pick regret (right) of each candidate predictor.

    ``scores`` columns: ``candidate``, ``held-out`` (how it was held out: k-fold, a model size),
    ``spearman``, ``regret``; one bar group per candidate, one bar per ``held-out``.
    """
    plt = _plt()
    df = pd.DataFrame(scores)
    cands = list(pd.unique(df["candidate"]))
    groups = list(pd.unique(df["held-out"]))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 0.4 * len(cands) * len(groups) + 1.6), sharey=True)
    height = 0.8 / len(groups)
    for j, g in enumerate(groups):
        sub = df[df["held-out"] == g].set_index("candidate").reindex(cands)
        pos = np.arange(len(cands)) + j * height
        for ax, col in zip(axes, ("spearman", "regret")):
            ax.barh(pos, sub[col].to_numpy(float), height=height, label=str(g))
    axes[0].set(yticks=np.arange(len(cands)) + 0.4 - height / 2, yticklabels=cands, xlabel="Spearman (higher is better)",
                title="ranking of held-out runs")
    axes[1].set(xlabel="regret of the top pick (lower is better)", title="top pick on held-out runs")
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
