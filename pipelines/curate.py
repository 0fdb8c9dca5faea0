"""Curate before pretraining: embed → score → measure → fit → predict → optimize → apply → verify → report.

1. **embed** every source and the target set (resumable stores, :func:`datamix.run.embed_stage`);
2. **score** every sample's quality (higher = better): ``el2n`` (minus the EL2N of a proxy trained
   on the source: label noise and outliers score low), ``prototype`` (minus the distance to the
   nearest k-means prototype), ``column`` (a column of the data) or ``random`` (a control);
3. **measure**: split every source into quality buckets (QQT pools, best first) and train the proxy
   on each bucket at several multiples of its size (repetition included); runs go to ``runs.csv``
   and are reused on rerun;
4. **fit** a :class:`~datamix.laws.qqt.QualityQuantity` law (utility and half-life per bucket) to the
   target-set error of those runs;
5. **predict** the metric at the budget, with intervals, of the reference mixtures (uniform, natural,
   each single source) into ``predictions.csv``;
6. **optimize** the mixture ratios and keep-fractions at the compute budget with
   :func:`~datamix.optimize.optimize_mixture` over a :class:`~datamix.predict.laws.QualityPredictor`,
   and trace the threshold curve over a range of budgets;
7. **apply** the plan (:func:`~datamix.apply.apply_plan`): curated shards and a manifest, rewritten
   only when the plan, the data or the scores changed or a shard is missing or altered
   (``apply.json`` keeps the manifest with what it was made from);
8. **verify**: train the proxy on the plan's data, on the uniform mixture and on the plan's ratios
   unfiltered (and on the sources in their natural proportions), all at the same budget — measured,
   whatever the outcome; kept in ``verify.json`` and reused while the plan, seeds and data are
   unchanged — and **report**.

Every output is written atomically; a killed run started again completes with the same results
(proxy runs are reused from ``runs.csv``, scores from ``scores/``). Bad input — unknown source
names, infeasible constraints, a budget below one sample, scores missing for a filtered source — is
refused before anything is written. ``run(..., until=STAGE)`` (the ``datamix fit|predict|optimize|
apply|report CONFIG`` commands) stops after a stage, reusing what the run directory holds.

Options come from a ``curate:`` section (:class:`CurateConfig`); until the run config carries one,
``run(cfg, run_dir, options=...)`` takes them as a dict, and the defaults apply otherwise.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from pydantic import ValidationError

from datamix import __version__
from datamix.config import CurateConfig, _format_errors
from datamix.io import save_npy, write_json, write_text
from datamix.run import RunDir, check_until, embed_stage, load_sources, stage_done

logger = logging.getLogger(__name__)

STAGES = ("embed", "score", "measure", "fit", "predict", "optimize", "apply", "verify", "report")
def curate_config(cfg, options: dict | None = None) -> CurateConfig:
    """The curate options: ``options`` (a dict, validated) if given, else the config's ``curate`` section."""
    if options is None:
        return cfg.curate
    try:
        return CurateConfig(**dict(options))
    except ValidationError as exc:
        raise ValueError(_format_errors("curate options", exc, CurateConfig)) from None


# ------------------------------------------------------------------------------------------------ validation
def _validate(ccfg: CurateConfig, sources, target) -> dict:
    """Everything checked before a file is written; returns the resolved decision inputs."""
    from datamix.optimize import check_constraints

    by_name = {s.name: s for s in sources}
    names = ccfg.sources or list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"curate.sources names unknown source(s) {unknown}; the sources are {list(by_name)}")
    if len(set(names)) != len(names):
        raise ValueError(f"curate.sources repeats names: {names}")
    for key in ("prices", "min_ratio", "max_ratio"):
        value = getattr(ccfg, key)
        if isinstance(value, dict):
            bad = sorted(set(value) - set(names))
            if bad:
                raise ValueError(f"curate.{key} names unknown source(s) {bad}; curated sources are {names}")
    if isinstance(ccfg.filter, list):
        bad = sorted(set(ccfg.filter) - set(names))
        if bad:
            raise ValueError(f"curate.filter names unknown source(s) {bad}; curated sources are {names}")
    if target is None:
        raise ValueError("the curate pipeline needs a target set (data.target, or a bundled scenario)")
    chosen = [by_name[n] for n in names]
    for s in chosen + [target]:
        if s.labels is None:
            raise ValueError(f"source {s.name!r} has no labels: the proxy trainings need a label field")
    filtered = names if ccfg.filter is True else [] if ccfg.filter is False else list(ccfg.filter)
    if ccfg.score.method == "column":
        if not ccfg.score.column:
            raise ValueError("curate.score.method 'column' needs curate.score.column (the quality-score column)")
        missing = [s.name for s in chosen if s.name in filtered and ccfg.score.column not in s.dataset.column_names]
        if missing:
            raise ValueError(f"scores missing for source(s) {missing}: no column {ccfg.score.column!r}; "
                             "add it or leave these sources out of curate.filter")
    for s in chosen:
        if len(s) < ccfg.buckets:
            raise ValueError(f"source {s.name!r} has {len(s)} samples, fewer than curate.buckets={ccfg.buckets}")
    available = {s.name: len(s) for s in chosen}
    tokens = ccfg.tokens if ccfg.tokens is not None else int(sum(available.values()))
    prices = None
    if ccfg.budget is not None:
        prices = {s.name: s.price for s in chosen if s.price is not None}
        prices.update(ccfg.prices)
    elif ccfg.prices:
        prices = dict(ccfg.prices)
    constraints = dict(budget=ccfg.budget, prices=prices, min_ratio=ccfg.min_ratio, max_ratio=ccfg.max_ratio,
                       max_epochs=ccfg.max_epochs, thresholds=ccfg.filter)
    check_constraints(names=names, tokens=tokens, available=available, **constraints)
    for m in ccfg.frontier:
        if tokens * m < 1:
            raise ValueError(f"curate.frontier multiple {m} of tokens={tokens} is below one sample")
    return {"names": names, "sources": chosen, "available": available, "tokens": tokens,
            "constraints": constraints, "filtered": filtered}


# ------------------------------------------------------------------------------------------------ stages
def _features(run_dir: RunDir, source) -> tuple[np.ndarray, np.ndarray]:
    from datamix.data.store import EmbeddingStore

    X = EmbeddingStore(run_dir.embeddings(source.name)).load()
    return np.ascontiguousarray(X, dtype=np.float32), np.asarray(source.labels)


def _score_key(ccfg: CurateConfig, X: np.ndarray, y: np.ndarray, seed: int) -> str:
    from datamix.optimize import fingerprint

    options = np.array([ccfg.score.model_dump_json(), str(seed)], dtype=object)
    return fingerprint(X, y.astype(str).astype(object), options)


def _method(ccfg: CurateConfig, y: np.ndarray, source=None) -> str:
    """The scoring method used for a source: EL2N needs two classes (a one-class source gets
    prototypes); a source without the score column (allowed only when it is not filtered) gets none."""
    if ccfg.score.method == "el2n" and np.unique(y).size < 2:
        return "prototype"
    if ccfg.score.method == "column" and source is not None and ccfg.score.column not in source.dataset.column_names:
        return "none"
    return ccfg.score.method


def _compute_scores(ccfg: CurateConfig, source, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    sc = ccfg.score.model_copy(update={"method": _method(ccfg, y, source)})
    if sc.method == "none":  # not filtered: every sample ranks alike (row order)
        return np.zeros(len(X))
    if sc.method == "random":
        import zlib

        return np.random.default_rng([seed, zlib.crc32(source.name.encode())]).random(len(X))
    if sc.method == "column":
        col = np.asarray(source.dataset[sc.column], dtype=np.float64)
        if col.shape != (len(X),) or not np.isfinite(col).all():
            raise ValueError(f"scores missing for source {source.name!r}: column {sc.column!r} must hold one finite "
                             "number per sample")
        return col
    if sc.method == "prototype":
        from datamix.prune import prototype_scores

        k = sc.n_clusters or max(2, int(round(np.sqrt(len(X)))))
        return -prototype_scores(X, n_clusters=min(k, len(X)), seed=seed, device="cpu")
    from datamix.prune import el2n, record_dynamics

    runs = record_dynamics(X, y, seeds=sc.seeds, model="linear", epochs=sc.epochs, device="cpu")
    return -el2n(runs)


def score_stage(ccfg: CurateConfig, run_dir: RunDir, sources, features: dict, seed: int) -> tuple[dict, dict]:
    """Quality scores per source (higher = better), cached in ``scores/<name>.npy``; and a summary
    (method, reused, mean, std) per source. A source scored by ``none`` has all-zero scores."""
    import json

    scores, summary = {}, {}
    for s in sources:
        X, y = features[s.name]
        key = _score_key(ccfg, X, y, seed)
        path, meta = run_dir.path("scores", f"{s.name}.npy"), run_dir.path("scores", f"{s.name}.json")
        if path.exists() and meta.exists() and json.loads(meta.read_text()).get("key") == key:
            values = np.load(path, allow_pickle=False)
            reused = True
        else:
            t0 = time.perf_counter()
            values = np.asarray(_compute_scores(ccfg, s, X, y, seed), dtype=np.float64)
            save_npy(path, values)
            write_json(meta, {"key": key, "method": _method(ccfg, y, s), "n": int(len(values)),
                              "seconds": round(time.perf_counter() - t0, 3)})
            reused = False
        scores[s.name] = values
        method = _method(ccfg, y, s)
        if method != ccfg.score.method:
            logger.info("source %s is scored by %s instead of %s", s.name, method, ccfg.score.method)
        summary[s.name] = {"method": method, "reused": reused, "mean": float(values.mean()), "std": float(values.std())}
    return scores, summary


def bucket_rows(scores: np.ndarray, n_buckets: int) -> list[np.ndarray]:
    """Row indices of each quality bucket, best first (ranked as :func:`datamix.apply.select_rows` does)."""
    order = np.lexsort((np.arange(scores.size), -scores))
    edges = np.round(np.linspace(0, scores.size, n_buckets + 1)).astype(int)
    return [np.sort(order[edges[j]:edges[j + 1]]) for j in range(n_buckets)]


def measure_stage(ccfg: CurateConfig, run_dir: RunDir, sources, features: dict, scores: dict, target_arrays,
                  trainer) -> tuple[pd.DataFrame, dict]:
    """Proxy runs on every pool (nested top shares or quality buckets) at ``passes`` multiples of its
    size; returns (runs, pools)."""
    from datamix.data.sources import Source
    from datamix.proxy.runs import MixtureRunner

    frames, pools = [], {}
    for s in sources:
        X, y = features[s.name]
        buckets = bucket_rows(scores[s.name], ccfg.buckets)
        if ccfg.pools == "nested":  # the top 1/m, 2/m, ..., all of the source
            buckets = [np.sort(np.concatenate(buckets[:j + 1])) for j in range(len(buckets))]
            names = [f"{s.name}.top{round(100 * len(b) / len(X))}" for b in buckets]
        else:
            names = [f"{s.name}.q{j + 1}" for j in range(len(buckets))]
        pool_sources, feats = [], {}
        for name, rows in zip(names, buckets):
            pool_sources.append(Source(name=name, dataset=s.dataset.select(rows), field=s.field, kind=s.kind,
                                       label_field=s.label_field, id_field=s.id_field, origin=f"{s.origin}#{name}"))
            feats[name] = (X[rows], y[rows])
        pools[s.name] = {name: int(len(rows)) for name, rows in zip(names, buckets)}
        runner = MixtureRunner(pool_sources, target_arrays, trainer=trainer, table=run_dir.path("runs.csv"),
                               features=feats)
        for j, name in enumerate(names):
            S = len(buckets[j])
            sizes = sorted({max(1, int(round(m * S))) for m in ccfg.passes})
            df = runner.measure_many(np.eye(len(names))[j][None, :], sizes, seeds=ccfg.seeds)
            frames.append(pd.DataFrame({"pool": name, "source": s.name, "n": df["size"].to_numpy(dtype=float),
                                        "S": float(S), "seed": df["seed"].to_numpy(), "metric": df["metric"].to_numpy(),
                                        "reused": df["reused"].to_numpy()}))
    return pd.concat(frames, ignore_index=True), pools


def fit_stage(ccfg: CurateConfig, runs: pd.DataFrame, pools: dict, n_target: int, seed: int):
    """The QQT law on the bucket runs (error = 1 - accuracy) and its predictor."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from datamix.laws.qqt import QualityQuantity
    from datamix.predict.laws import QualityPredictor

    X = runs[["pool", "n", "S"]].reset_index(drop=True)
    y = np.clip(1.0 - runs["metric"].to_numpy(dtype=float), 0.5 / n_target, None)  # a perfect score is < 1 error
    # three best grid starts and capped iterations: the Huber loss (delta 1e-3) is nearly L1 and the
    # full grid of starts took 40 s on the digits runs for a 0.5% lower cost (2 cores)
    bounds = None if ccfg.floor_cap is None else {"d": (0.0, ccfg.floor_cap * float(y.min()))}
    law = QualityQuantity(n_starts=3, max_iter=300, tol=1e-9, n_bootstrap=ccfg.n_bootstrap, seed=seed, bounds=bounds)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        # one BLAS thread: L-BFGS-B on this small problem took 11 s with two threads, 0.3 s with one
        warnings.simplefilter("always", ConvergenceWarning)
        law.fit(X, y)
    for w in caught:
        logger.info("QQT fit: %s", w.message)
    predictor = QualityPredictor(law, pools=pools, nested=ccfg.pools == "nested", output="accuracy").fit()
    return law, predictor, X, y


def _training_set(plan_like: dict, features: dict, scores: dict, seed: int):
    """Rows of every source for ``{name: (ratio, keep_fraction, epochs)}`` (as apply_plan selects them)."""
    from datamix.apply import select_rows

    Xs, ys = [], []
    for name, (r, q, e) in plan_like.items():
        if r <= 0:
            continue
        X, y = features[name]
        sel = select_rows(scores[name], q, e, seed=seed, name=name)
        Xs.append(np.repeat(X[sel.rows], sel.repeats, axis=0))
        ys.append(np.repeat(y[sel.rows], sel.repeats))
    return np.concatenate(Xs), np.concatenate(ys)


def _mixture(names, ratios, keeps, available, tokens) -> dict:
    kept = {n: max(1, int(round(keeps[n] * available[n]))) for n in names}
    return {n: (ratios[n], kept[n] / available[n], ratios[n] * tokens / kept[n]) for n in names}


def reference_mixtures(names, available: dict, tokens: float, plan=None) -> dict:
    """The mixtures a plan is judged against, unfiltered, as ``{label: {name: (ratio, keep, epochs)}}``:
    uniform, natural (proportional to the sources' sizes), every single source, and — given a plan —
    the plan itself and its ratios unfiltered."""
    ones = dict.fromkeys(names, 1.0)
    total = sum(available.values())
    mixtures = {}
    if plan is not None:
        mixtures["plan"] = {n: (plan.ratios[n], plan.keep_fractions[n], plan.epochs[n]) for n in names}
        mixtures["unfiltered"] = _mixture(names, plan.ratios, ones, available, tokens)
    mixtures["uniform"] = _mixture(names, dict.fromkeys(names, 1.0 / len(names)), ones, available, tokens)
    mixtures["natural"] = _mixture(names, {n: available[n] / total for n in names}, ones, available, tokens)
    if plan is None:
        for m in names:
            mixtures[f"only {m}"] = _mixture(names, {n: float(n == m) for n in names}, ones, available, tokens)
    return mixtures


def _predicted(ccfg: CurateConfig, predictor, names, mix: dict, tokens: float) -> dict:
    p = np.array([mix[n][0] for n in names])
    q = np.array([mix[n][1] for n in names])
    lo, hi = predictor.predict_interval(p, tokens, q=q, level=ccfg.level)
    return {"ratios": dict(zip(names, p.tolist())), "keep_fractions": dict(zip(names, q.tolist())),
            "predicted": float(predictor.predict(p, tokens, q=q)), "interval": [lo, hi]}


def predict_stage(ccfg: CurateConfig, predictor, names, available, tokens) -> pd.DataFrame:
    """Predicted metric (with interval) at the budget of every reference mixture; one row each."""
    rows = []
    for label, mix in reference_mixtures(names, available, tokens).items():
        pred = _predicted(ccfg, predictor, names, mix, tokens)
        rows.append({"mixture": label, **{f"p_{n}": pred["ratios"][n] for n in names},
                     "predicted": pred["predicted"], "lo": pred["interval"][0], "hi": pred["interval"][1]})
    return pd.DataFrame(rows)


def verify_stage(ccfg: CurateConfig, plan, predictor, names, available, tokens, features, scores, target_arrays,
                 trainer, classes) -> dict:
    """Train the proxy on the plan and on the reference mixtures at the same budget; measured metric per mixture."""
    out = {}
    for label, mix in reference_mixtures(names, available, tokens, plan).items():
        values = []
        for seed in ccfg.verify_seeds:
            X, y = _training_set(mix, features, scores, seed)
            acc, _ = trainer.train(X, y, *target_arrays, classes=classes, seed=seed)
            values.append(acc)
        out[label] = {**_predicted(ccfg, predictor, names, mix, tokens), "samples": int(len(y)),
                      "measured": float(np.mean(values)),
                      "measured_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                      "measured_runs": [float(v) for v in values]}
    return out


# ------------------------------------------------------------------------------------------------ run
def run(cfg, run_dir: RunDir, *, progress: bool = True, options: dict | None = None,
        until: str | None = None) -> dict:
    """Run the curate pipeline in ``run_dir``; return the metrics written to ``metrics.json``.

    Parameters
    ----------
    cfg : RunConfig
    run_dir : RunDir
    progress : bool
        Progress bars of the embed stage.
    options : dict, optional
        The curate options (:class:`CurateConfig` fields); default: ``cfg.curate`` when the config
        has that section, else the defaults.
    until : str, optional
        Stop after this stage (one of :data:`STAGES`); earlier stages reuse what the run directory
        already holds (embeddings, scores, proxy runs), so ``until="apply"`` after a full run
        rewrites only the curated shards. Default: every stage.

    Raises
    ------
    ValueError
        Unknown stage, unknown source names, infeasible constraints, a compute budget below one
        sample, a money budget below one sample's price, scores missing for a filtered source —
        before any output.
    """
    from datamix.apply import apply_plan, manifest_intact
    from datamix.optimize import fingerprint, optimize_mixture
    from datamix.optimize.frontier import threshold_curve
    from datamix.proxy.runs import ProxyTrainer

    check_until("curate", STAGES, until)
    t_start = time.perf_counter()
    timings = {}
    ccfg = curate_config(cfg, options)
    trainer = ProxyTrainer.from_dict(ccfg.trainer)
    sources, target = load_sources(cfg, run_dir)
    resolved = _validate(ccfg, sources, target)
    names, chosen, available, tokens = (resolved[k] for k in ("names", "sources", "available", "tokens"))
    seed = int(getattr(cfg, "seed", 0))
    metrics = {
        "datamix_version": __version__,
        "pipeline": "curate",
        "curate_config": ccfg.model_dump(mode="json"),
        "sources": {s.name: {"n": len(s), "kind": s.kind, "price": s.price} for s in chosen},
        "target": {"name": target.name, "n": len(target)},
        "tokens": tokens,
        "stages_done": [],
        "seconds": timings,
    }

    def done(stage: str, *, record: bool = True) -> bool:
        """Record ``stage`` as done; True when the run stops here (metrics written)."""
        if not stage_done(metrics, stage, until, STAGES, record=record):
            return False
        timings["total"] = time.perf_counter() - t_start
        metrics["seconds"] = {k: round(v, 3) for k, v in timings.items()}
        run_dir.save_metrics(metrics)
        logger.info("curate stopped after %s in %.1f s", stage, timings["total"])
        return True

    # nothing was written before this point
    if hasattr(cfg, "to_yaml"):
        run_dir.save_config(cfg)
    write_json(run_dir.path("curate_config.json"), ccfg.model_dump(mode="json"))
    t0 = time.perf_counter()
    metrics["embed"] = embed_stage(cfg, run_dir, chosen + [target], progress=progress)
    features = {s.name: _features(run_dir, s) for s in chosen}
    target_arrays = _features(run_dir, target)
    timings["embed"] = time.perf_counter() - t0
    if done("embed"):
        return metrics

    t0 = time.perf_counter()
    scores, metrics["score"] = score_stage(ccfg, run_dir, chosen, features, seed)
    timings["score"] = time.perf_counter() - t0
    if done("score"):
        return metrics

    t0 = time.perf_counter()
    runs, pools = measure_stage(ccfg, run_dir, chosen, features, scores, target_arrays, trainer)
    write_text(run_dir.path("pool_runs.csv"), runs.to_csv(index=False, float_format="%.10g"))
    metrics["runs"] = {"total": int(len(runs)), "trained": int((~runs["reused"]).sum()),
                       "reused": int(runs["reused"].sum())}
    timings["measure"] = time.perf_counter() - t0
    if done("measure"):
        return metrics

    t0 = time.perf_counter()
    law, predictor, X_law, y_law = fit_stage(ccfg, runs, pools, len(target_arrays[1]), seed)
    metrics["law"] = {"params": law.params_, "converged": bool(law.converged_),
                      "mean_abs_rel_error": float(law.score(X_law, y_law))}
    write_json(run_dir.path("law.json"), {
        "law": "QualityQuantity", "form": law.form, **metrics["law"],
        "pools": {src: [[k, v] for k, v in p.items()] for src, p in pools.items()}})  # best first (JSON sorts keys)
    timings["fit"] = time.perf_counter() - t0
    if done("fit"):
        return metrics

    t0 = time.perf_counter()
    predictions = predict_stage(ccfg, predictor, names, available, tokens)
    write_text(run_dir.path("predictions.csv"), predictions.to_csv(index=False, float_format="%.10g"))
    metrics["predictions"] = predictions.set_index("mixture")[["predicted", "lo", "hi"]].to_dict(orient="index")
    timings["predict"] = time.perf_counter() - t0
    if done("predict"):
        return metrics

    t0 = time.perf_counter()
    constraints = resolved["constraints"]
    scored = {n: v for n, v in scores.items() if metrics["score"][n]["method"] != "none"}
    plan = optimize_mixture(predictor, tokens=tokens, sources=available, seed=seed, scores=scored,
                            n_starts=ccfg.n_starts, level=ccfg.level, **constraints)
    plan.provenance["law"] = {"name": "QualityQuantity", "form": law.form, "converged": bool(law.converged_)}
    data_keys = _data_fingerprints(features, target_arrays)
    plan.provenance["inputs_data"] = dict(data_keys)
    plan.to_yaml(run_dir.path("plan.yaml"))
    plan.to_json(run_dir.path("plan.json"))
    budgets = [tokens * m for m in ccfg.frontier]
    frontier = threshold_curve(predictor, budgets, sources=available, seed=seed,
                               **{k: v for k, v in constraints.items() if k != "thresholds"},
                               thresholds=constraints["thresholds"], n_starts=max(2, ccfg.n_starts // 2))
    write_text(run_dir.path("frontier.csv"), frontier.to_frame().to_csv(index=False, float_format="%.10g"))
    metrics["plan"] = plan.to_dict()
    metrics["frontier"] = frontier.to_frame().to_dict(orient="list")
    timings["optimize"] = time.perf_counter() - t0
    if done("optimize"):
        return metrics

    t0 = time.perf_counter()
    # what apply and verify depend on besides the plan: reused while none of it changes
    inputs = {"data": data_keys,
              "scores": {n: fingerprint(np.asarray(s))[:16] for n, s in sorted(scores.items())}}
    curated = run_dir.path("curated")
    manifest = run_dir.cached(
        "apply.json", {"plan": plan.to_dict(), "seed": seed, "format": ccfg.format, "shard_size": ccfg.shard_size,
                       **inputs},
        lambda: _quietly(not progress, apply_plan, plan, chosen, scored, curated, seed=seed, format=ccfg.format,
                         shard_size=ccfg.shard_size, engine=getattr(cfg, "engine", None)),
        check=lambda m: manifest_intact(curated, m))
    metrics["manifest"] = {"total_samples": manifest["total_samples"], "total_unique": manifest["total_unique"]}
    timings["apply"] = time.perf_counter() - t0
    if done("apply"):
        return metrics

    t0 = time.perf_counter()
    verified = None
    if ccfg.verify:
        classes = np.unique(np.concatenate([features[n][1] for n in names] + [target_arrays[1]]))
        key = {"plan": plan.to_dict(), "seeds": list(ccfg.verify_seeds), "trainer": trainer.signature,
               "tokens": tokens, **inputs}
        verified = run_dir.cached("verify.json", key, lambda: verify_stage(
            ccfg, plan, predictor, names, available, tokens, features, scores, target_arrays, trainer, classes))
    metrics["verified"] = verified
    metrics["check"] = None if not verified else {
        "plan_beats_uniform": verified["plan"]["measured"] > verified["uniform"]["measured"],
        "plan_beats_unfiltered": verified["plan"]["measured"] > verified["unfiltered"]["measured"],
        "plan_beats_natural": verified["plan"]["measured"] > verified["natural"]["measured"]}
    timings["verify"] = time.perf_counter() - t0
    if done("verify", record=ccfg.verify):  # recorded only when the config asks for it
        return metrics

    t0 = time.perf_counter()
    report = _report(run_dir, ccfg, plan, law, X_law, y_law, pools, runs, predictor, frontier, verified, tokens,
                     trainer, resolved)
    metrics["report"] = {"html": report.html.name, "markdown": report.markdown.name,
                         "figures": sorted(f"figures/{p.name}" for p in report.figures.values())}
    timings["report"] = time.perf_counter() - t0
    done("report")
    logger.info("curate done in %.1f s: predicted %.4f; %s", time.perf_counter() - t_start, plan.predicted,
                metrics["check"])
    return metrics


def _quietly(quiet: bool, fn, *args, **kwargs):
    """Call ``fn`` with the datasets progress bars off when ``quiet``."""
    if not quiet:
        return fn(*args, **kwargs)
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return fn(*args, **kwargs)
    finally:
        if was:
            datasets.enable_progress_bars()


def _data_fingerprints(features, target_arrays) -> dict:
    from datamix.optimize import fingerprint

    out = {n: fingerprint(X, y.astype(str).astype(object))[:16] for n, (X, y) in features.items()}
    out["target"] = fingerprint(target_arrays[0], target_arrays[1].astype(str).astype(object))[:16]
    return out


def _report(run_dir, ccfg, plan, law, X_law, y_law, pools, runs, predictor, frontier, verified, tokens, trainer,
            resolved):
    from datamix.report import (plot_frontier, plot_law_fit, plot_mixture, plot_predicted_vs_measured,
                                write_report)

    groups = {src: list(p) for src, p in pools.items()}
    fit_pts = pd.DataFrame({"measured": 1.0 - y_law, "predicted": 1.0 - law.predict(X_law),
                            "label": "pool runs (fit)"})
    rows = [fit_pts]
    comparisons = None
    if verified:
        ver = pd.DataFrame([{"label": k, "measured": v["measured"], "predicted": v["predicted"],
                             "lo": v["interval"][0], "hi": v["interval"][1]} for k, v in verified.items()])
        rows.append(ver)
        comparisons = pd.DataFrame([{"mixture": k, "samples": v["samples"], "predicted": v["predicted"],
                                     "measured": v["measured"], "measured_std": v["measured_std"]}
                                    for k, v in verified.items()])
    figures = {
        "law_fit": plot_law_fit(law, X_law, y_law, groups=groups, level=ccfg.level, ylabel="target error"),
        "predicted_vs_measured": plot_predicted_vs_measured(pd.concat(rows, ignore_index=True), metric="accuracy"),
        "threshold_curve": plot_frontier(frontier, chosen=tokens, metric="accuracy"),
        "mixture": plot_mixture(plan),
    }
    inputs = {
        "compute budget (samples seen)": tokens,
        "money budget": ccfg.budget,
        "max_epochs": ccfg.max_epochs,
        "min_ratio": ccfg.min_ratio,
        "max_ratio": ccfg.max_ratio,
        "filtered sources": resolved["filtered"],
        "quality score": ccfg.score.method,
        "quality levels per source": ccfg.buckets,
        "proxy trainer": trainer.signature,
        "quality pools": f"{ccfg.pools}, {sum(len(p) for p in pools.values())} pools",
        "pool runs": int(len(runs)),
        "law": f"QualityQuantity (form {law.form}), mean abs. rel. error {law.score(X_law, y_law):.4g}",
        "gradients": plan.provenance.get("gradients"),
        "seed": plan.provenance.get("seed"),
        "datamix version": __version__,
    }
    notes = [f"Mixture ratios and filtering thresholds chosen by datamix {__version__} for a compute budget of "
             f"{tokens:g} samples seen, with a QQT law fitted to {len(runs)} proxy runs on quality pools of every "
             "source (the top shares by quality score). 'Compared mixtures' were trained by the proxy at the same "
             "budget and measured on the target set."]
    return write_report(run_dir.root, plan, figures=figures, inputs=inputs, comparisons=comparisons,
                        frontier=frontier, title="datamix curate report", notes=notes)


