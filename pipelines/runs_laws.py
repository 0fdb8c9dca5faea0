"""The runs pipeline for tables of quality pools (``kind: pools``) and of (N, D, U) runs (``kind: scaling``).

**pools**: one row per training on a pool — the pool's name, samples (or tokens) seen, unique
samples in the pool, the error. Candidates ``qqt`` (:class:`~datamix.laws.QualityQuantity`, every
parameter free) and ``qqt_reference`` (the reference code's form, shared ``a``, ``d`` held at
``runs.shared``). The plan: how many of the best-ranked pools to train on for ``tokens`` samples
seen (nested prefixes top-1, top-1..2, ..., combined by the QQT rule,
:func:`~datamix.laws.best_pool_combination`); ``frontier.csv``: that choice per budget.

**scaling**: one row per training — parameters N, tokens seen D, unique tokens U, the loss.
Candidates ``data_constrained`` (:class:`~datamix.laws.DataConstrained`) and ``chinchilla``. The
plan: N and D for the compute ``flops`` (C = 6 N D) given ``unique_tokens`` (epochs D / U), or the
prediction at the given ``size`` and ``tokens``; ``frontier.csv``: N, D, epochs per budget.

Both: candidates scored by k-fold and by extrapolation (fitted on the smallest 70% of runs by
samples seen or model size, judged on the rest: the transfer to larger scale); chosen by the
held-out error of ``runs.select``. Writes ``law.json``, ``predictions.csv``, ``plan.yaml``,
``frontier.csv``, ``report.html``/``report.md``, ``metrics.json``; stages as the mixtures kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datamix import __version__
from datamix.data.store import file_sha256
from datamix.io import json_safe, write_json, write_text
from pipelines.runs import Driver, _missing, _numeric, _quiet_fits, objective, read_table

#: budgets of the frontier when none are given, as multiples of the planned one
BUDGET_MULTIPLES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class LawTable:
    """A validated pools or scaling table.

    Attributes
    ----------
    X : DataFrame
        The law's columns: ``pool``, ``n``, ``S`` (pools) or ``N``, ``D``, ``U`` (scaling).
    y : ndarray of shape (n_runs,)
        The objective.
    scale : ndarray of shape (n_runs,)
        Samples seen (pools) or parameters (scaling): what the extrapolation split orders by.
    pools : dict of str to float
        Pools ranked best first and their unique samples (empty for scaling).
    fingerprint : str
    """

    X: pd.DataFrame
    y: np.ndarray
    scale: np.ndarray
    pools: dict
    fingerprint: str


def _positive(df: pd.DataFrame, col: str, key: str) -> np.ndarray:
    values = _numeric(df, col, key)
    zero = np.flatnonzero(values <= 0)
    if zero.size:
        raise ValueError(f"runs.{key}: column {col!r} row {int(zero[0])} is 0; every value must be > 0 "
                         f"({zero.size} such row(s): {zero[:10].tolist()})")
    return values


def _columns(df: pd.DataFrame, **keys) -> None:
    for key, col in keys.items():
        if col is not None:
            _missing([col], df, key)


def _pool_sizes(rcfg, df: pd.DataFrame, pool: np.ndarray, S: np.ndarray | None) -> dict:
    """Pools in rank order (``runs.pools`` or the table's) and their unique samples."""
    found = list(pd.unique(pool))
    order = rcfg.pools or found
    unknown = [q for q in order if q not in found]
    if unknown:
        raise ValueError(f"runs.pools names pool(s) {unknown} that the table does not have; its pools "
                         f"(column {rcfg.pool_column!r}): {found}")
    if len(set(order)) != len(order):
        raise ValueError(f"runs.pools names a pool twice: {order}")
    if S is not None:
        return {q: float(S[pool == q].max()) for q in order}
    unknown = sorted(set(rcfg.unique_tokens) - set(found))
    missing = [q for q in found if q not in rcfg.unique_tokens]
    if unknown or missing:
        raise ValueError(f"runs.unique_tokens must give the unique samples of every pool of the table {found}; "
                         f"unknown: {unknown}, missing: {missing}")
    return {q: float(rcfg.unique_tokens[q]) for q in order}


def load_law_table(rcfg, path: Path) -> LawTable:
    """Read and check a pools or scaling table: columns exist (else the columns found are listed),
    values finite and > 0 (naming column and row).

    Raises
    ------
    ValueError
        Naming the key, the column and the row.
    """
    df = read_table(path)
    y, _ = objective(df, rcfg.metric)
    zero = np.flatnonzero(y <= 0)
    if zero.size:
        raise ValueError(f"runs.metric: row {int(zero[0])} is 0; a law of an error or loss needs values > 0")
    if rcfg.kind == "pools":
        _columns(df, pool_column=rcfg.pool_column, seen_column=rcfg.seen_column, unique_column=rcfg.unique_column)
        pool = df[rcfg.pool_column].astype(str).to_numpy()
        n = _positive(df, rcfg.seen_column, "seen_column")
        S = _positive(df, rcfg.unique_column, "unique_column") if rcfg.unique_column else None
        pools = _pool_sizes(rcfg, df, pool, S)
        X = pd.DataFrame({"pool": pool, "n": n, "S": S if S is not None else [rcfg.unique_tokens[q] for q in pool]})
        total = rcfg.total or sum(pools.values())
        if total < sum(pools.values()) * (1 - 1e-9):
            raise ValueError(f"runs.total={rcfg.total:g} is smaller than the pools it holds ({sum(pools.values()):g} "
                             "unique samples); give the whole dataset's size")
        scale = n
    else:
        _columns(df, size_column=rcfg.size_column, seen_column=rcfg.seen_column, unique_column=rcfg.unique_column)
        X = pd.DataFrame({"N": _positive(df, rcfg.size_column, "size_column"),
                          "D": _positive(df, rcfg.seen_column, "seen_column"),
                          "U": _positive(df, rcfg.unique_column, "unique_column")})
        pools, scale = {}, X["N"].to_numpy()
    return LawTable(X=X, y=y, scale=scale, pools=pools, fingerprint=file_sha256(path))


def _free(rcfg, table: LawTable, name: str) -> int:
    from datamix.predict.runs_laws import n_free

    return n_free(name, n_pools=table.X["pool"].nunique() if rcfg.kind == "pools" else 0,
                  shared=rcfg.shared, base=rcfg.base)


def candidates(rcfg, table: LawTable) -> list[str]:
    """The candidates the runs are enough for (more runs per training fold than free parameters);
    ValueError naming ``runs.law`` when the named one, or every one, lacks runs."""
    from datamix.predict.runs_laws import KIND_LAWS

    n = len(table.y)
    n_train = n - int(np.ceil(n / rcfg.folds))
    if rcfg.select == "scale":
        from datamix.laws import extrapolation_split

        try:
            n_train = min(n_train, int(extrapolation_split(table.scale).sum()))
        except ValueError as exc:
            raise ValueError(f"runs.select: scale: {exc}") from None
    names = KIND_LAWS[rcfg.kind] if rcfg.law == "auto" else (rcfg.law,)
    ok = [c for c in names if _free(rcfg, table, c) < n_train]
    if not ok:
        need = {c: _free(rcfg, table, c) + 1 for c in names}
        per = f"fold of {rcfg.folds}" if rcfg.select == "kfold" else "split"
        raise ValueError(f"runs.law={rcfg.law}: {n} runs ({n_train} per training {per}) "
                         f"are fewer than {' / '.join(f'{c} needs {k}' for c, k in need.items())} (more than its free "
                         "parameters); measure more runs, lower runs.folds or choose another law")
    return ok


def validate(rcfg, path: Path) -> tuple[LawTable, list[str]]:
    """Everything checked before a write: the table, and the candidates it is enough for."""
    table = load_law_table(rcfg, path)
    return table, candidates(rcfg, table)


def _make(rcfg, seed: int):
    from datamix.predict.runs_laws import make_law

    return lambda name: make_law(name, shared=rcfg.shared, base=rcfg.base, seed=seed)


def selection(rcfg, table: LawTable, names: list[str], seed: int) -> dict:
    """Held-out errors of every candidate (k-fold and extrapolation) and the choice, JSON-ready."""
    from datamix.predict.runs_laws import score_laws

    try:
        scores = score_laws(names, table.X, table.y, make=_make(rcfg, seed), folds=rcfg.folds, scale=table.scale,
                            seed=seed)
    except ValueError:  # too few distinct scales to extrapolate: k-fold only
        scores = score_laws(names, table.X, table.y, make=_make(rcfg, seed), folds=rcfg.folds, seed=seed)
    judged = scores.scale if rcfg.select == "scale" else scores.kfold
    law = rcfg.law if rcfg.law != "auto" else min(names, key=lambda c: (round(judged.loc[c, "rel_error"], 12),
                                                                         names.index(c)))
    return {"method": rcfg.select, "law": law, "kfold": scores.kfold.to_dict("index"),
            "scale": None if scores.scale is None else scores.scale.to_dict("index"),
            "scale_fitted": None if scores.scale_mask is None else scores.scale_mask.tolist(),
            "held_out": scores.held_out[law].tolist(), "fold": scores.held_out["fold"].tolist()}


def _log_residuals(chosen: dict, y: np.ndarray) -> np.ndarray:
    return np.log(y / np.asarray(chosen["held_out"]))


def interval(pred, residuals: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Split-conformal interval in ratio: ``pred`` times the exp of the central ``level`` quantiles
    of the held-out log residuals log(measured / predicted) (always holding ``pred``)."""
    lo, hi = np.quantile(residuals, [(1 - level) / 2, (1 + level) / 2])
    pred = np.asarray(pred, dtype=np.float64)
    return pred * np.exp(min(lo, 0.0)), pred * np.exp(max(hi, 0.0))


def _budgets(rcfg) -> list[float]:
    planned = rcfg.tokens if rcfg.kind == "pools" else (rcfg.flops or 6 * rcfg.size * rcfg.tokens)
    return sorted(set(rcfg.budgets or [m * planned for m in BUDGET_MULTIPLES]) | {planned})


def _pool_decision(law, table: LawTable, rcfg, n: float) -> dict:
    from datamix.laws import best_pool_combination

    c = best_pool_combination(law, table.pools, n, total=rcfg.total)
    return {"budget": n, "pools": "+".join(c.pools), "n_pools": c.n_pools, "keep_fraction": c.keep_fraction,
            "kept": c.kept_samples, "epochs": c.epochs, "predicted": c.predicted}


def _scaling_decision(law, rcfg, flops: float | None) -> dict:
    from datamix.predict.runs_laws import compute_optimal

    U = float(rcfg.unique_tokens)
    if flops is None:
        N, D = rcfg.size, rcfg.tokens
        pred = float(law.predict(pd.DataFrame({"N": [N], "D": [D], "U": [U]}))[0])
    else:
        N, D, pred = compute_optimal(law, flops, U)
    return {"flops": 6 * N * D, "N": N, "D": D, "epochs": D / U, "tokens_per_param": D / N, "predicted": pred}


def optimize_stage(rcfg, table: LawTable, law, residuals, chosen: dict, seed: int, inputs: str):
    """(plan, frontier DataFrame): the decision at the planned budget and at every budget."""
    from datamix.optimize import Plan
    from datamix.optimize.plan import check_plan

    if rcfg.kind == "pools":
        rows = [_pool_decision(law, table, rcfg, b) for b in _budgets(rcfg)]
        best = next(r for r in rows if r["budget"] == rcfg.tokens)
        chosen_pools = best["pools"].split("+")
        ratios = {q: (s / best["kept"] if q in chosen_pools else 0.0) for q, s in table.pools.items()}
        epochs = {q: (best["epochs"] if q in chosen_pools else 0.0) for q in table.pools}
        extra = {"pools": chosen_pools, "keep_fraction": best["keep_fraction"], "available": table.pools,
                 "total": rcfg.total or sum(table.pools.values())}
        available = table.pools
    else:
        rows = [_scaling_decision(law, rcfg, b) for b in _budgets(rcfg)]
        best = _scaling_decision(law, rcfg, rcfg.flops)
        ratios, epochs = {"data": 1.0}, {"data": best["epochs"]}
        extra = {"N": best["N"], "D": best["D"], "flops": best["flops"], "available": {"data": rcfg.unique_tokens}}
        available = {"data": float(rcfg.unique_tokens)}
    frontier = pd.DataFrame(rows)
    frontier["lo"], frontier["hi"] = interval(frontier["predicted"], residuals, rcfg.level)
    lo, hi = interval([best["predicted"]], residuals, rcfg.level)
    plan = Plan(ratios=ratios, keep_fractions={q: 1.0 for q in ratios}, thresholds={}, epochs=epochs, buy={},
                predicted=best["predicted"], interval=(float(lo[0]), float(hi[0])),
                provenance={"datamix_version": __version__, "pipeline": "runs", "kind": rcfg.kind, "inputs": inputs,
                            "seed": seed, "law": chosen["law"], "selection": chosen["method"], "level": rcfg.level,
                            "tokens": rcfg.tokens, "greater_is_better": False, "metric": rcfg.metric, **extra})
    check_plan(plan, available)
    return plan, frontier


def _decision_line(rcfg, plan) -> str:
    p = plan.provenance
    if rcfg.kind == "pools":
        return (f"train on {'+'.join(p['pools'])} (keep {p['keep_fraction']:.3g} of the data, "
                f"{max(plan.epochs.values()):.3g} epochs) for {rcfg.tokens:.4g} samples seen: predicted "
                f"{plan.predicted:.4g}")
    return (f"N = {p['N']:.4g} parameters, D = {p['D']:.4g} tokens ({plan.epochs['data']:.3g} epochs of "
            f"{rcfg.unique_tokens:.4g} unique) for C = {p['flops']:.4g} FLOPs: predicted {plan.predicted:.4g}")


def run_laws(cfg, run_dir, rcfg, path: Path, *, until: str | None = None) -> dict:
    """The pools / scaling runs pipeline in ``run_dir`` (called by :func:`pipelines.runs.run`, which
    holds the writer lock); the metrics written to ``metrics.json``."""
    table, names = validate(rcfg, path)
    drive = Driver.start(cfg, run_dir, rcfg, until, table.fingerprint, {
        "path": str(path), "runs": int(len(table.y)), **({"pools": table.pools} if table.pools else {})})
    metrics = drive.metrics
    chosen = drive.selection(lambda: selection(rcfg, table, names, cfg.seed))
    make = _make(rcfg, cfg.seed)
    with _quiet_fits():
        fitted = {c: make(c).fit(table.X, table.y) for c in names}
    law = fitted[chosen["law"]]
    residuals = _log_residuals(chosen, table.y)
    write_json(run_dir.path("law.json"), json_safe({
        "kind": rcfg.kind, "metric": rcfg.metric, "selection": {"method": chosen["method"], "law": chosen["law"]},
        "kfold": chosen["kfold"], "scale": chosen["scale"], "params": {c: m.params_ for c, m in fitted.items()},
        "pools": table.pools or None, "held_out_log_residual_sd": float(np.std(residuals, ddof=1))}))
    metrics["selection"] = {"method": chosen["method"], "law": chosen["law"]}
    metrics["candidates"] = chosen["kfold"]
    if chosen["scale"]:
        metrics["candidates_at_scale"] = chosen["scale"]
    if drive.stop("fit"):
        return metrics

    preds = table.X.copy()
    preds["measured"] = table.y
    preds["predicted"] = chosen["held_out"]
    preds["lo"], preds["hi"] = interval(preds["predicted"], residuals, rcfg.level)
    preds["fitted"] = law.predict(table.X)
    preds["split"] = [f"held-out fold {f}" for f in chosen["fold"]]
    write_text(run_dir.path("predictions.csv"), preds.to_csv(index=False, float_format="%.6g"))
    metrics["held_out"] = {"rel_error": chosen["kfold"][chosen["law"]]["rel_error"],
                           "coverage": float(((preds.lo <= preds.measured) & (preds.measured <= preds.hi)).mean())}
    if drive.stop("predict"):
        return metrics

    plan, frontier = optimize_stage(rcfg, table, law, residuals, chosen, cfg.seed, drive.inputs())
    drive.save_plan(plan)
    write_text(run_dir.path("frontier.csv"), frontier.to_csv(index=False, float_format="%.6g"))
    metrics["frontier"] = frontier.to_dict("records")
    metrics["decision"] = _decision_line(rcfg, plan)
    if drive.stop("optimize"):
        return metrics

    drive.save_report(_report(run_dir, plan, preds, frontier, chosen, metrics, rcfg))
    return metrics


def _report(run_dir, plan, preds, frontier, chosen, metrics, rcfg):
    """``report.html`` / ``report.md``: the decision, every candidate's held-out errors, the frontier."""
    from datamix.report import plot_budget_curve, plot_predicted_vs_measured, write_report

    rows = [{"candidate": c, "held-out": "k-fold", **s} for c, s in chosen["kfold"].items()]
    rows += [{"candidate": c, "held-out": "larger scale (transfer)", **s} for c, s in (chosen["scale"] or {}).items()]
    unit = "samples seen" if rcfg.kind == "pools" else "FLOPs"
    inputs = {"runs table": f"{Path(metrics['table']['path']).name} ({metrics['table']['runs']} runs)",
              "kind": rcfg.kind, "objective": rcfg.metric, "selection": f"{chosen['method']} (law: {rcfg.law})",
              "chosen law": chosen["law"],
              "held-out relative error / coverage": f"{metrics['held_out']['rel_error']:.4g} / "
                                                    f"{metrics['held_out']['coverage']:.0%}"}
    if rcfg.kind == "pools":
        inputs.update({"pools (best first)": plan.provenance["available"], "tokens": rcfg.tokens})
    else:
        inputs.update({"flops": rcfg.flops, "size": rcfg.size, "tokens": rcfg.tokens,
                       "unique_tokens": rcfg.unique_tokens, "base": rcfg.base})
    notes = [f"Decision: {metrics['decision']}.",
             f"Predictions are the {chosen['law']} law's, refitted on every run; intervals: the "
             f"{int(rcfg.level * 100)}% central range of its k-fold held-out relative errors (budgets past the "
             "runs may err more: see the transfer rows)."]
    shown = preds.assign(label="held-out runs (k-fold)")
    label = "pools" if rcfg.kind == "pools" else "N"
    curve = frontier.assign(N=frontier["N"].map("{:.3g}".format)) if rcfg.kind == "scaling" else frontier
    figures = {"predicted_vs_measured": plot_predicted_vs_measured(shown, metric="objective"),
               "frontier": plot_budget_curve(curve, x="budget" if rcfg.kind == "pools" else "flops", label=label,
                                             metric="objective", chosen=rcfg.tokens if rcfg.kind == "pools"
                                             else plan.provenance["flops"])}
    return write_report(run_dir.root, plan, figures=figures, inputs=inputs, title="datamix runs report", notes=notes,
                        tables={"Candidates (held-out errors)": pd.DataFrame(rows),
                                f"Frontier (best decision per budget, {unit})": frontier})

