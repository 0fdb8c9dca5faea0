"""Decide from the user's own training runs: fit → predict → optimize → report.

``runs.kind: mixtures`` (this module) plans a mixture; ``pools`` and ``scaling`` tables (quality
pools, (N, D, U) runs) are handled by :mod:`pipelines.runs_laws`.

The input is a runs table (csv, parquet or json/jsonl, read through HF ``datasets``): one row per
training, its mixture weights, optionally its model size and seed, and metric columns. Repeated
runs of one configuration (same weights and size) are averaged and their spread kept as the
measurement noise. Candidate predictors of the objective from the weights
(:mod:`datamix.predict.runs`: MixingLaw with 1 and 2 components, gradient boosting, linear, and
their ensemble) are scored on held-out runs — k-fold over the runs of the fit size, or fitted on
the fit size and judged on the next larger one (``select: scale``) — and two are chosen: the
ranker (best held-out Spearman: it predicts) and the picker (a law, the simpler unless clearly
beaten on held-out top-pick regret: it chooses the mixture). Larger model sizes in the table report how the ranking transfers.

Writes into the run directory: ``config.yaml``, ``law.json`` (every candidate's held-out errors,
the choice, the laws' parameters), ``predictions.csv`` (every run: measured, predicted held out,
interval), ``plan.yaml`` / ``plan.json`` (ratios under min/max ratio and the epoch cap),
``report.html`` / ``report.md`` with figures, and ``metrics.json``. ``run(..., until=STAGE)``
(``datamix fit|predict|optimize|report CONFIG``) stops after a stage of :data:`STAGES`; the
held-out scoring is kept in ``selection.json`` and reused while the table and settings are unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from datamix import __version__
from datamix.config import RunsConfig
from datamix.data.store import file_sha256
from datamix.io import json_safe, write_json, write_text
from datamix.run import one_writer

logger = logging.getLogger(__name__)

STAGES = ("fit", "predict", "optimize", "report")
#: table formats by file suffix, read with ``datasets.Dataset.from_<format>``
_READERS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json"}


def _runs_config(cfg) -> RunsConfig:
    if cfg.runs is None:
        raise ValueError("the runs pipeline needs a 'runs:' section with at least a table and a metric")
    return cfg.runs


@dataclass(frozen=True)
class RunsTable:
    """A validated runs table, repeated configurations averaged.

    Attributes
    ----------
    sources : list of str
        Source names, in column order.
    runs : DataFrame
        One row per configuration: the weight columns renamed to the sources (rows normalised to
        sum 1), ``size`` (model size, NaN without a size column), ``measured`` (mean objective),
        ``measured_std`` (over its repeats; NaN for a single run), ``n_runs``.
    noise : float
        Pooled standard deviation of the objective over repeated configurations (NaN if none).
    fingerprint : str
        sha256 of the table file.
    """

    sources: list
    runs: pd.DataFrame
    noise: float
    fingerprint: str


def read_table(path: Path) -> pd.DataFrame:
    """The runs table at ``path`` as a DataFrame with string column names, read through HF
    ``datasets`` (its cache in a temporary folder: nothing is written beside the table or into the
    run directory)."""
    import datasets

    if not path.is_file():
        raise FileNotFoundError(f"runs.table: {path} does not exist")
    fmt = _READERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"runs.table: {path.name}: unknown format {path.suffix!r}; use one of "
                         f"{', '.join(sorted(_READERS))}")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a table of runs reads in an instant
    with tempfile.TemporaryDirectory(prefix="datamix-runs-") as cache:
        try:
            df = getattr(datasets.Dataset, f"from_{fmt}")(str(path), cache_dir=cache, keep_in_memory=True).to_pandas()
        except Exception as exc:  # noqa: BLE001 - the readers raise many types; name the file
            raise ValueError(f"runs.table: {path} could not be read as {fmt}: {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from None
        finally:
            if bars:
                datasets.enable_progress_bars()
    if df.empty:
        raise ValueError(f"runs.table: {path} holds no runs")
    df.columns = [str(c) for c in df.columns]
    return df


def _missing(columns: list[str], df: pd.DataFrame, key: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"runs.{key} names column(s) {missing} that the table does not have; its columns: "
                         f"{list(map(str, df.columns))}")


def _plain(value):
    """A table cell as plain Python, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _numeric(df: pd.DataFrame, col: str, key: str) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"runs.{key}: column {col!r} row {i} holds {_plain(df[col].iloc[i])!r}; every value must be a "
                         f"finite number >= 0 ({bad.size} bad row(s): {bad[:10].tolist()})")
    return values


def objective(df: pd.DataFrame, metric) -> tuple[np.ndarray, dict]:
    """The objective of every row, shape (n_rows,), and the metric weights {column: weight}: one
    column, the mean of a list, or a weighted sum of a mapping."""
    weights = ({metric: 1.0} if isinstance(metric, str) else
               {c: 1.0 / len(metric) for c in metric} if isinstance(metric, list) else dict(metric))
    _missing(list(weights), df, "metric")
    y = sum(w * _numeric(df, c, "metric") for c, w in weights.items())
    return np.asarray(y, dtype=np.float64), weights


def load_runs(rcfg: RunsConfig, path: Path) -> RunsTable:
    """Read and check the runs table: columns exist, weights are >= 0 and sum to 1 (within
    ``sum_tolerance``; then normalised), metrics finite and >= 0, sizes > 0; repeats averaged.

    Raises
    ------
    ValueError
        Naming the key, the column and the row.
    """
    df = read_table(path)
    if rcfg.weights is not None:
        cols = list(rcfg.weights)
        _missing(cols, df, "weights")
        sources = cols
    else:
        cols = [c for c in df.columns if c.startswith(rcfg.weight_prefix)]
        if not cols:
            raise ValueError(f"runs.weight_prefix {rcfg.weight_prefix!r}: no column starts with it; the table's "
                             f"columns: {list(df.columns)}")
        sources = [c[len(rcfg.weight_prefix):] for c in cols]
        if any(not s for s in sources):
            raise ValueError(f"runs.weight_prefix {rcfg.weight_prefix!r} is a whole column name; it must be "
                             "followed by the source's name")
    if len(sources) < 2:
        raise ValueError(f"runs.weights: a mixture needs at least 2 sources, got {sources}")
    W = np.column_stack([_numeric(df, c, "weights") for c in cols])
    sums = W.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > rcfg.sum_tolerance)
    if off.size:
        i = int(off[0])
        raise ValueError(f"runs.weights: row {i} sums to {sums[i]:.6g}, not 1 within runs.sum_tolerance="
                         f"{rcfg.sum_tolerance:g} ({off.size} such row(s): {off[:10].tolist()}); fix the weights or "
                         "raise sum_tolerance if they were rounded")
    y, _ = objective(df, rcfg.metric)
    if rcfg.size_column is not None:
        _missing([rcfg.size_column], df, "size_column")
        size = _numeric(df, rcfg.size_column, "size_column")
        zero = np.flatnonzero(size <= 0)
        if zero.size:
            raise ValueError(f"runs.size_column: column {rcfg.size_column!r} row {int(zero[0])} is 0; model sizes "
                             "must be > 0")
    else:
        size = np.full(len(df), np.nan)
    runs = pd.DataFrame(W / sums[:, None], columns=sources)
    runs["size"] = size
    key = pd.Series([",".join(f"{v:.9f}" for v in row) + f"|{s!r}" for row, s in zip(runs[sources].to_numpy(), size)])
    if rcfg.seed_column is not None:
        _missing([rcfg.seed_column], df, "seed_column")
        dup = np.flatnonzero(pd.Series([f"{k}|{s!r}" for k, s in zip(key, df[rcfg.seed_column])]).duplicated())
        if dup.size:
            raise ValueError(f"runs.seed_column: row {int(dup[0])} repeats the weights, size and seed "
                             f"{_plain(df[rcfg.seed_column].iloc[int(dup[0])])!r} of an earlier row (a run entered twice?)")
    runs["measured"] = y
    runs["config"] = key.to_numpy()
    grouped = runs.groupby("config", sort=False)
    table = grouped.first()[sources + ["size"]]
    table["measured"] = grouped["measured"].mean()
    table["measured_std"] = grouped["measured"].std(ddof=1)
    table["n_runs"] = grouped.size()
    repeated = table["n_runs"] > 1
    noise = (float(np.sqrt(np.average(table.loc[repeated, "measured_std"] ** 2,
                                      weights=table.loc[repeated, "n_runs"] - 1))) if repeated.any() else float("nan"))
    return RunsTable(sources=sources, runs=table.reset_index(drop=True), noise=noise, fingerprint=file_sha256(path))


def split_sizes(rcfg: RunsConfig, table: RunsTable) -> tuple[float, float | None, list]:
    """(fit size, selection size or None for k-fold, transfer sizes); NaN sizes without a size column."""
    sizes = sorted(table.runs["size"].dropna().unique().tolist())
    if not sizes:
        if rcfg.fit_size is not None or rcfg.select == "scale":
            raise ValueError("runs.fit_size and runs.select: scale need runs.size_column (the model size of each run)")
        return float("nan"), None, []
    fit = sizes[0] if rcfg.fit_size is None else rcfg.fit_size
    if fit not in sizes:
        raise ValueError(f"runs.fit_size={rcfg.fit_size:g} is not a size of the table; its sizes: {sizes}")
    larger = [s for s in sizes if s > fit]
    if rcfg.select == "scale":
        if not larger:
            raise ValueError(f"runs.select: scale needs runs of a size above fit_size={fit:g}; the table's sizes: "
                             f"{sizes}")
        return fit, larger[0], larger[1:]
    return fit, None, larger


def bounds(rcfg: RunsConfig, sources: list[str]):
    """The plan's feasible set (a :class:`~datamix.optimize.constraints.MixtureProblem`): min/max
    ratio, and with tokens and unique_tokens the epoch cap; ValueError naming the key if infeasible."""
    from datamix.optimize.constraints import check_constraints

    unknown = sorted(set(rcfg.unique_tokens) - set(sources))
    if unknown:
        raise ValueError(f"runs.unique_tokens names unknown source(s) {unknown}; the table's sources: {sources}")
    missing = [s for s in sources if s not in rcfg.unique_tokens]
    if rcfg.unique_tokens and missing:
        raise ValueError(f"runs.unique_tokens lacks source(s) {missing}; give every source's unique tokens")
    tokens = rcfg.tokens or 1.0
    available = {s: round(rcfg.unique_tokens.get(s, tokens)) for s in sources}
    try:
        return check_constraints(names=sources, tokens=tokens, available=available, min_ratio=rcfg.min_ratio,
                                 max_ratio=rcfg.max_ratio, max_epochs=rcfg.max_epochs, thresholds=False,
                                 q_aware=False)
    except ValueError as exc:
        raise ValueError(f"runs: {exc}") from None


def _validate(rcfg: RunsConfig, path: Path):
    """(table, sizes, problem, fit rows): everything checked before a write."""
    from datamix.predict.runs import CANDIDATES, min_runs

    table = load_runs(rcfg, path)
    sizes = split_sizes(rcfg, table)
    problem = bounds(rcfg, table.sources)
    fit_rows = table.runs["size"].isna() | (table.runs["size"] == sizes[0])
    n, k = int(fit_rows.sum()), len(table.sources)
    n_train = n - int(np.ceil(n / rcfg.folds))
    if rcfg.law != "auto" and min_runs(rcfg.law, k) > n_train:
        raise ValueError(f"runs.law={rcfg.law}: {n} runs at the fit size ({n_train} per training fold of "
                         f"{rcfg.folds}) are fewer than the {min_runs(rcfg.law, k)} it needs for {k} sources (more "
                         "than its free parameters); measure more runs, lower runs.folds or choose another law")
    if rcfg.law == "auto" and min(min_runs(c, k) for c in CANDIDATES) > n_train:
        raise ValueError(f"runs: {n} runs at the fit size ({n_train} per training fold of {rcfg.folds}) are fewer "
                         f"than any predictor needs for {k} sources ({min_runs('linear', k)} for linear regression: "
                         "more than its free parameters); measure more runs")
    if not rcfg.extrapolate:
        problem = measured_range(problem, table.runs.loc[fit_rows, table.sources].to_numpy())
    return table, sizes, problem, fit_rows.to_numpy()


def measured_range(problem, X: np.ndarray):
    """``problem`` with each source's ratio bounds narrowed to the range the runs ``X`` (n_runs,
    n_sources) measured: a predictor fitted there is unchecked beyond it (a one-component mixing law's
    optimum sits at a corner of the bounds, however far from the runs). ValueError naming the keys
    when the narrowed set is empty."""
    lo, hi = np.maximum(problem.lo, X.min(axis=0)), np.minimum(problem.hi, X.max(axis=0))
    if np.any(lo > hi + 1e-12) or lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9:
        ranges = {n: f"{a:.3g}..{b:.3g}" for n, a, b in zip(problem.names, X.min(axis=0), X.max(axis=0))}
        raise ValueError(f"runs: min_ratio/max_ratio leave no mixture inside the ratios the runs measured {ranges}; "
                         "widen them, or set runs.extrapolate: true to plan outside the measured range")
    return replace(problem, lo=lo, hi=np.maximum(hi, lo))


def check(cfg, sources, target) -> None:
    """Every check :func:`run` makes before it writes (for ``datamix info CONFIG``)."""
    rcfg = _runs_config(cfg)
    if rcfg.kind == "mixtures":
        _validate(rcfg, Path(cfg.resolve(rcfg.table)))
    else:
        from pipelines.runs_laws import validate

        validate(rcfg, Path(cfg.resolve(rcfg.table)))


def _scores(pred: np.ndarray, y: np.ndarray, greater_is_better: bool) -> dict:
    """Spearman, mean absolute error, and the regret of the top pick among these runs."""
    from scipy.stats import spearmanr

    sign = 1.0 if greater_is_better else -1.0
    rho = float(spearmanr(pred, y)[0]) if np.ptp(pred) > 0 and len(y) > 2 else float("nan")
    return {"runs": int(len(y)), "spearman": rho, "mae": float(np.mean(np.abs(pred - y))),
            "regret": float(np.max(sign * y) - sign * y[np.argmax(sign * pred)])}


def _selection(rcfg, table, fit_rows, select_size, seed: int) -> dict:
    """Held-out scores of every candidate and the choice (JSON-ready), by k-fold or held-out scale."""
    from datamix.predict.runs import CANDIDATES, make_candidate, min_runs, select_mixture_predictor

    X = table.runs.loc[fit_rows, table.sources].to_numpy()
    y = table.runs.loc[fit_rows, "measured"].to_numpy()
    sel = select_mixture_predictor(X, y, law=rcfg.law, folds=rcfg.folds, greater_is_better=rcfg.greater_is_better,
                                   seed=seed)
    out = {"method": "kfold", "folds": rcfg.folds, "ranker": sel.ranker, "picker": sel.picker, "law": sel.law,
           "kfold": sel.scores.to_dict("index"), "held_out": sel.held_out[sel.ranker].tolist(),
           "fold": sel.held_out["fold"].tolist()}
    if select_size is None:
        return out
    # held-out scale: every candidate fitted on the fit size, judged on the runs of the selection size
    rows = table.runs["size"] == select_size
    Xs, ys = table.runs.loc[rows, table.sources].to_numpy(), table.runs.loc[rows, "measured"].to_numpy()
    names = [c for c in CANDIDATES if c in sel.scores.index]
    with _quiet_fits():
        scale = {c: _scores(make_candidate(c, law=sel.law, seed=seed).fit(X, y).predict(Xs), ys,
                            rcfg.greater_is_better) for c in names}
    order = {c: i for i, c in enumerate(CANDIDATES)}
    if rcfg.law == "auto":  # the picker stays the k-fold one (a law)
        out["ranker"] = min(names, key=lambda c: (-round(scale[c]["spearman"], 12), order[c]))
    out.update(method="scale", select_size=select_size, scale=scale)
    return out


@contextlib.contextmanager
def _quiet_fits():
    """One BLAS/OpenMP thread and no ConvergenceWarning: the fits are judged by held-out error, and a
    law that stops at max_iter keeps its best state."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@dataclass(frozen=True)
class _Fitted:
    ranker: object
    picker: object
    residuals: np.ndarray


def _fit_final(rcfg, table, fit_rows, chosen: dict, seed: int) -> _Fitted:
    """The chosen ranker and picker refitted on every fit-size run; the ranker's held-out residuals."""
    from datamix.predict.runs import make_candidate

    X = table.runs.loc[fit_rows, table.sources].to_numpy()
    y = table.runs.loc[fit_rows, "measured"].to_numpy()
    with _quiet_fits():
        ranker = make_candidate(chosen["ranker"], law=chosen["law"], seed=seed).fit(X, y)
        picker = ranker if chosen["picker"] == chosen["ranker"] else make_candidate(chosen["picker"], seed=seed).fit(X, y)
    residuals = y - np.asarray(chosen["held_out"])
    return _Fitted(ranker, picker, residuals)


def _interval(pred: np.ndarray, residuals: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Split-conformal interval: the prediction plus the ``level`` central quantiles of the held-out residuals."""
    lo, hi = np.quantile(residuals, [(1 - level) / 2, (1 + level) / 2])
    return pred + min(lo, 0.0), pred + max(hi, 0.0)


def predict_stage(rcfg, table, fit_rows, fitted: _Fitted, chosen: dict, sizes) -> pd.DataFrame:
    """Every configuration: measured, predicted (held out for the fit-size runs: the k-fold
    prediction; the other sizes from the fit size), interval, and which split it is in."""
    df = table.runs.drop(columns="config", errors="ignore").copy()
    pred = np.asarray(fitted.ranker.predict(df[table.sources].to_numpy()), dtype=np.float64)
    pred[fit_rows] = chosen["held_out"]
    split = np.where(fit_rows, [f"held-out fold {f}" for f in _expand(chosen["fold"], fit_rows)], "transfer")
    if sizes[1] is not None:
        split = np.where(df["size"] == sizes[1], "selection", split)
    df["predicted"] = pred
    df["lo"], df["hi"] = _interval(pred, fitted.residuals, rcfg.level)
    df["split"] = split
    return df


def _expand(values, mask) -> np.ndarray:
    out = np.zeros(len(mask), dtype=int)
    out[mask] = values
    return out


def transfer(rcfg, table, fit_rows, sizes, seed: int, chosen: dict) -> dict:
    """Per larger size: every candidate's Spearman, error and top-pick regret on those runs (fitted
    on the fit size), and the chosen ranker's and picker's."""
    from datamix.predict.runs import make_candidate

    if not sizes[2]:
        return {}
    X = table.runs.loc[fit_rows, table.sources].to_numpy()
    y = table.runs.loc[fit_rows, "measured"].to_numpy()
    with _quiet_fits():
        models = {c: make_candidate(c, law=chosen["law"], seed=seed).fit(X, y) for c in chosen["kfold"]}
    out = {}
    for size in sizes[2]:
        rows = table.runs["size"] == size
        Xs, ys = table.runs.loc[rows, table.sources].to_numpy(), table.runs.loc[rows, "measured"].to_numpy()
        per = {c: _scores(m.predict(Xs), ys, rcfg.greater_is_better) for c, m in models.items()}
        per["chosen"] = {**per[chosen["ranker"]], "regret": per[chosen["picker"]]["regret"]}
        out[f"{size:g}"] = per
    return out


def optimize_stage(rcfg, table, fitted: _Fitted, chosen: dict, problem, seed: int, inputs: str):
    """The plan: the picker's best mixture in the feasible set (random search; or the mean of its
    ``average_top`` best), the ranker's prediction and interval there, epochs when tokens and
    unique tokens are known."""
    from datamix.optimize import Plan
    from datamix.optimize.plan import check_plan
    from datamix.predict.runs import pick_mixture

    names = table.sources
    p, _ = pick_mixture(fitted.picker, problem.lo, problem.hi, greater_is_better=rcfg.greater_is_better,
                        n_samples=rcfg.n_samples, extra=table.runs[names].to_numpy(), seed=seed,
                        average_top=rcfg.average_top)
    p = np.where(p < 1e-12, 0.0, p)
    p = p / p.sum()
    predicted = float(fitted.ranker.predict(p[None, :])[0])
    lo, hi = _interval(np.array([predicted]), fitted.residuals, rcfg.level)
    epochs = ({n: float(p[i] * rcfg.tokens / rcfg.unique_tokens[n]) for i, n in enumerate(names)}
              if rcfg.tokens and rcfg.unique_tokens else {})
    plan = Plan(ratios=dict(zip(names, p.tolist())), keep_fractions={n: 1.0 for n in names}, thresholds={},
                epochs=epochs, buy={}, predicted=predicted, interval=(float(lo[0]), float(hi[0])),
                provenance={"datamix_version": __version__, "pipeline": "runs", "inputs": inputs, "seed": seed,
                            "ranker": chosen["ranker"], "picker": chosen["picker"], "selection": chosen["method"],
                            "tokens": rcfg.tokens, "max_epochs": rcfg.max_epochs, "level": rcfg.level,
                            "greater_is_better": rcfg.greater_is_better, "metric": rcfg.metric})
    if epochs:
        check_plan(plan, {n: float(u) for n, u in rcfg.unique_tokens.items()})
    return plan


def against_runs(plan, rcfg, table, fit_rows, fitted: _Fitted) -> dict:
    """The plan's prediction against the best measured run at the fit size that meets the plan's
    constraints (``check``: ``predicted better``, ``predicted worse`` or ``tie`` within two held-out
    residual standard deviations; absent when no run meets them), and the sources whose plan ratio
    sits at the edge of the measured range where the constraints allow more (``at_edge``: the
    predictors would go on, unchecked, past the runs)."""
    runs = table.runs.loc[fit_rows]
    X = runs[table.sources].to_numpy()
    user = bounds(rcfg, table.sources)
    at_edge = {}
    for i, s in enumerate(table.sources):
        r, lo, hi = plan.ratios[s], X[:, i].min(), X[:, i].max()
        if not rcfg.extrapolate and ((np.isclose(r, hi) and hi < user.hi[i] - 1e-9)
                                     or (np.isclose(r, lo) and lo > user.lo[i] + 1e-9)):
            at_edge[s] = [float(lo), float(hi)]
    feasible = runs[np.all((X >= user.lo - 1e-9) & (X <= user.hi + 1e-9), axis=1)]
    if feasible.empty:
        return {"check": {}, "at_edge": at_edge}
    sign = 1.0 if rcfg.greater_is_better else -1.0
    best = feasible.iloc[int(np.argmax(sign * feasible["measured"].to_numpy()))]
    diff = plan.predicted - float(best["measured"])
    se = float(np.std(fitted.residuals, ddof=1))
    outcome = "tie" if abs(diff) <= 2 * se else ("predicted better" if sign * diff > 0 else "predicted worse")
    mixture = ", ".join(f"{s} {best[s]:.3g}" for s in table.sources if best[s] > 0)
    return {"check": {"best measured run": {"outcome": outcome, "difference": diff, "se": se, "source": mixture}},
            "at_edge": at_edge}


def _law_json(table, chosen: dict, fitted: _Fitted, rcfg, sizes) -> dict:
    params = {}
    for role, model in (("ranker", fitted.ranker), ("picker", fitted.picker)):
        members = getattr(model, "estimators_", [(chosen[role], model)])
        for name, est in members:
            if hasattr(est, "params_"):
                params[name] = est.params_
            elif hasattr(est, "coef_"):
                params[name] = {"intercept": float(est.intercept_),
                                **{f"coef[{s}]": float(c) for s, c in zip(table.sources, est.coef_)}}
    return {"sources": table.sources, "metric": rcfg.metric, "greater_is_better": rcfg.greater_is_better,
            "fit_size": sizes[0], "selection": {k: chosen[k] for k in ("method", "ranker", "picker", "law")},
            "kfold": chosen["kfold"], "scale": chosen.get("scale"), "params": params,
            "noise": table.noise, "held_out_residual_sd": float(np.std(fitted.residuals, ddof=1))}


@dataclass
class Driver:
    """What every kind of runs table does around its stages: ``metrics.json`` kept, a stop after the
    stage asked for (``until``), the held-out selection cached on the table and config, the plan and
    the report recorded. Build it with :meth:`start` once the input is validated."""

    run_dir: object
    until: str | None
    metrics: dict
    key: dict
    t0: float

    @classmethod
    def start(cls, cfg, run_dir, rcfg: RunsConfig, until: str | None, fingerprint: str, table: dict) -> "Driver":
        """Save the config (nothing was written before) and open the metrics; ``table`` describes the runs."""
        if hasattr(cfg, "to_yaml"):
            run_dir.save_config(cfg)
        metrics = {"datamix_version": __version__, "pipeline": "runs", "kind": rcfg.kind,
                   "runs_config": rcfg.model_dump(mode="json"), "table": {**table, "sha256": fingerprint},
                   "stages_done": []}
        key = {"table": fingerprint, "config": rcfg.model_dump(mode="json"), "seed": cfg.seed, "version": __version__}
        return cls(run_dir, until, metrics, key, time.perf_counter())

    def stop(self, stage: str) -> bool:
        """Record ``stage`` as done; True (metrics saved) when the run ends there."""
        from datamix.run import stage_done

        if not stage_done(self.metrics, stage, self.until, STAGES):
            return False
        self.metrics["seconds"] = round(time.perf_counter() - self.t0, 3)
        self.run_dir.save_metrics(self.metrics)
        return True

    def selection(self, compute) -> dict:
        """``compute()`` (the held-out scores and the choice), cached in ``selection.json``."""
        return self.run_dir.cached("selection.json", self.key, compute)

    def inputs(self) -> str:
        """The plan's input fingerprint: the table and the seed."""
        from datamix.optimize import fingerprint

        return fingerprint(np.array([self.key["table"], self.key["seed"]], dtype=object))[:16]

    def save_plan(self, plan) -> None:
        plan.to_yaml(self.run_dir.path("plan.yaml"))
        plan.to_json(self.run_dir.path("plan.json"))
        self.metrics["plan"] = plan.to_dict()

    def save_report(self, report) -> None:
        self.metrics["report"] = {"html": report.html.name, "markdown": report.markdown.name,
                                  "figures": sorted(f"figures/{p.name}" for p in report.figures.values())}
        self.stop("report")


@one_writer
def run(cfg, run_dir, *, progress: bool = True, until: str | None = None) -> dict:
    """Run the runs pipeline in ``run_dir``; return the metrics written to ``metrics.json``.

    ``until`` stops after that stage (default: all): ``fit`` (law.json), ``predict``
    (predictions.csv), ``optimize`` (plan.yaml), ``report``. ``progress`` is accepted for the CLI.

    Raises
    ------
    ValueError
        No ``runs`` section, an unreadable table, missing columns, bad weights or metrics (naming
        the column and row), too few runs for the law, infeasible constraints: before anything is written.
    """
    from datamix.run import check_until

    check_until("runs", STAGES, until)
    rcfg = _runs_config(cfg)
    path = Path(cfg.resolve(rcfg.table))
    if rcfg.kind != "mixtures":
        from pipelines.runs_laws import run_laws

        return run_laws(cfg, run_dir, rcfg, path, until=until)
    table, sizes, problem, fit_rows = _validate(rcfg, path)
    drive = Driver.start(cfg, run_dir, rcfg, until, table.fingerprint, {
        "path": str(path), "configurations": int(len(table.runs)), "runs": int(table.runs["n_runs"].sum()),
        "sources": table.sources, "sizes": sorted(table.runs["size"].dropna().unique().tolist()), "noise": table.noise})
    metrics = drive.metrics
    chosen = drive.selection(lambda: _selection(rcfg, table, fit_rows, sizes[1], cfg.seed))
    fitted = _fit_final(rcfg, table, fit_rows, chosen, cfg.seed)
    write_json(run_dir.path("law.json"), json_safe(_law_json(table, chosen, fitted, rcfg, sizes)))
    metrics["selection"] = {k: chosen[k] for k in ("method", "ranker", "picker", "law")}
    metrics["candidates"] = chosen["kfold"]
    if chosen.get("scale"):
        metrics["candidates_at_selection_size"] = chosen["scale"]
    logger.info("runs: ranker %s, picker %s (%s)", chosen["ranker"], chosen["picker"], chosen["method"])
    if drive.stop("fit"):
        return metrics

    preds = predict_stage(rcfg, table, fit_rows, fitted, chosen, sizes)
    write_text(run_dir.path("predictions.csv"), preds.to_csv(index=False, float_format="%.6g"))
    metrics["transfer"] = transfer(rcfg, table, fit_rows, sizes, cfg.seed, chosen)
    held = preds[fit_rows]
    metrics["held_out"] = {**_scores(held["predicted"].to_numpy(), held["measured"].to_numpy(), rcfg.greater_is_better),
                           "coverage": float(((held.lo <= held.measured) & (held.measured <= held.hi)).mean())}
    if drive.stop("predict"):
        return metrics

    plan = optimize_stage(rcfg, table, fitted, chosen, problem, cfg.seed, drive.inputs())
    drive.save_plan(plan)
    metrics |= against_runs(plan, rcfg, table, fit_rows, fitted)
    if drive.stop("optimize"):
        return metrics

    drive.save_report(_report(run_dir, plan, preds, chosen, metrics, rcfg, table))
    return metrics


def _report(run_dir, plan, preds: pd.DataFrame, chosen: dict, metrics: dict, rcfg, table):
    """``report.html`` / ``report.md``: the decision, the candidates' held-out errors, the transfer
    to larger sizes, and figures (predicted vs measured, chosen mixture, candidates' errors)."""
    from datamix.report import plot_candidates, plot_mixture, plot_predicted_vs_measured, write_report

    shown = preds.assign(label=np.where(preds["split"].str.startswith("held-out"), "held-out runs (k-fold)",
                                        preds["split"] + " runs, N=" + preds["size"].map("{:g}".format)))
    rows = [{"candidate": c, "held-out": "k-fold", **{k: v for k, v in s.items() if k != "min_runs"}}
            for c, s in chosen["kfold"].items()]
    rows += [{"candidate": c, "held-out": f"N={chosen['select_size']:g}", **s} for c, s in (chosen.get("scale") or {}).items()]
    rows += [{"candidate": c, "held-out": f"transfer N={size}", **s}
             for size, per in metrics.get("transfer", {}).items() for c, s in per.items()]
    inputs = {"runs table": f"{Path(metrics['table']['path']).name} ({metrics['table']['runs']} runs, "
                            f"{metrics['table']['configurations']} configurations)",
              "objective": rcfg.metric, "greater is better": rcfg.greater_is_better,
              "measurement noise (sd over repeats)": table.noise if np.isfinite(table.noise) else "no repeated runs",
              "selection": f"{chosen['method']} (law: {rcfg.law})", "ranker (predicts)": chosen["ranker"],
              "picker (chooses the mixture)": chosen["picker"],
              "held-out Spearman / error / coverage": f"{metrics['held_out']['spearman']:.4g} / "
                                                     f"{metrics['held_out']['mae']:.4g} / "
                                                     f"{metrics['held_out']['coverage']:.0%}",
              "tokens": rcfg.tokens, "min_ratio": rcfg.min_ratio, "max_ratio": rcfg.max_ratio,
              "max_epochs": rcfg.max_epochs}
    notes = [f"The mixture is the {chosen['picker']} predictor's best among {rcfg.n_samples} random feasible mixtures "
             f"and the measured ones; predictions are the {chosen['ranker']} predictor's, at the fit size's scale "
             "(a larger model's metric differs in level: the transfer rows judge its ranking). Intervals: the "
             f"{int(rcfg.level * 100)}% central range of the held-out residuals."]
    best = metrics["check"].get("best measured run")
    notes.append(f"Against the best measured run within the constraints ({best['source']}): {best['outcome']} "
                 f"(predicted minus measured {best['difference']:+.4g}; a tie is within two held-out residual sd, "
                 f"{2 * best['se']:.3g})." if best else "No measured run meets the plan's constraints.")
    notes += [f"{s}: the plan sits at the edge of the ratios the runs measured ({lo:.3g} .. {hi:.3g}); the "
              "predictors would go further, where no run checked them. Measure mixtures past it, or set "
              "runs.extrapolate: true." for s, (lo, hi) in metrics["at_edge"].items()]
    figures = {"predicted_vs_measured": plot_predicted_vs_measured(shown, metric="objective"),
               "chosen_mixture": plot_mixture(plan),
               "candidates": plot_candidates(pd.DataFrame(rows))}
    return write_report(run_dir.root, plan, figures=figures, inputs=inputs, comparisons=pd.DataFrame(rows),
                        title="datamix runs report", notes=notes)
