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

import hashlib
import json
import logging
import time

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from datamix import __version__
from datamix.config import CurateConfig, _format_errors
from datamix.data.store import file_sha256
from datamix.io import save_npy, write_json, write_text
from datamix.run import RunDir, check_until, embed_stage, load_features, load_sources, one_writer, stage_done

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
def default_trainer(sources, target) -> dict:
    """Trainer options when ``curate.trainer`` is unset: the causal LM for text, else a compute-bound MLP."""
    if all(s.kind == "text" for s in list(sources) + ([target] if target is not None else [])):
        return {"model": "lm"}
    return {"model": "mlp", "compute_bound": True, "batch_size": 32}


def _validate(ccfg: CurateConfig, sources, target, resolve=None) -> dict:
    """Everything checked before a file is written; returns the resolved decision inputs (the trainer,
    and for the language model every source's and the target's tokens)."""
    from datamix.optimize import check_constraints
    from datamix.proxy.trainers import ProxyTrainer, make_trainer

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
    options = dict(ccfg.trainer) if ccfg.trainer is not None else default_trainer(chosen, target)
    if options.get("tokenizer") not in (None, "bytes") and resolve is not None:
        options["tokenizer"] = resolve(options["tokenizer"])  # relative to the config file
    try:
        trainer = make_trainer(options)
        trainer.signature  # loads the tokenizer: a missing or broken file is refused here
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise ValueError(f"curate.trainer: {exc}") from None
    classifier = isinstance(trainer, ProxyTrainer)
    method = score_method(ccfg, trainer)
    for s in chosen + [target]:
        if classifier and s.labels is None:
            raise ValueError(f"source {s.name!r} has no labels: the classifier proxy ({trainer.signature}) needs a "
                             "label field; for unlabelled text use curate.trainer {model: lm}")
        if not classifier and s.kind != "text":
            raise ValueError(f"source {s.name!r} holds {s.kind} samples: curate.trainer 'lm' trains on text")
        if method == "el2n" and s is not target and s.labels is None:
            raise ValueError(f"curate.score.method 'el2n' needs labels and source {s.name!r} has none; use "
                             "'importance' or 'prototype'")
    if method == "importance" and classifier:
        raise ValueError("curate.score.method 'importance' scores text with small language models: use it with "
                         "curate.trainer {model: lm}")
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
    # the language model's data: every document tokenized once (bad documents refused here)
    docs = {} if classifier else {s.name: trainer.prepare(s, f"source {s.name!r}") for s in chosen + [target]}
    if docs:
        trainer.check_data([docs[n] for n in names], docs[target.name])
    available = {s.name: (len(s) if classifier else trainer.size_of(docs[s.name])) for s in chosen}
    tokens = ccfg.tokens if ccfg.tokens is not None else int(sum(available.values()))
    _check_epochs(ccfg, tokens, int(sum(available.values())), trainer.unit)
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
    check_pool_runs(ccfg, trainer, available)
    return {"names": names, "sources": chosen, "available": available, "tokens": tokens,
            "constraints": constraints, "filtered": filtered, "trainer": trainer, "docs": docs,
            "score_method": method}


def epoch_caps(ccfg: CurateConfig, budgets, available: dict, constraints: dict) -> list:
    """The plan's cap on the epochs of any source at each budget: ``curate.max_epochs`` when given,
    else the most passes the pool runs measure (``max(curate.passes)``: past it the repetition law is
    extrapolated, and a small pool's loss can turn up), raised where a budget needs more passes over
    all the data or ``min_ratio`` of a source; none (with a warning) where the other ``constraints``
    (a money budget) need more still."""
    from datamix.optimize import check_constraints

    if ccfg.max_epochs is not None:
        return [ccfg.max_epochs] * len(budgets)
    lo = constraints.get("min_ratio") or 0.0
    lo = lo if isinstance(lo, dict) else dict.fromkeys(available, lo)
    need = max(float(lo.get(n, 0.0)) / u for n, u in available.items())  # epochs per token seen, min_ratio's
    caps = []
    for B in budgets:
        cap = max(max(ccfg.passes), B / sum(available.values()), B * need)
        try:
            check_constraints(names=list(available), tokens=B, available=available, **{**constraints, "max_epochs": cap})
        except ValueError:
            logger.warning("at %g seen the constraints need more than %.3g epochs of a source, past the pool runs' "
                           "%g passes: the plan extrapolates the repetition law", B, cap, max(ccfg.passes))
            cap = None
        caps.append(cap)
    return caps


def _check_epochs(ccfg: CurateConfig, tokens: float, unique: int, unit: str) -> None:
    """Refuse a budget whose largest frontier multiple implies more than ``MAX_PASSES`` passes over
    all the curated sources' data; warn past 4 (data sufficiency) — both before any work."""
    from datamix.config import MAX_PASSES

    top = max(ccfg.frontier + [1.0])
    implied = tokens * top / max(unique, 1)
    if implied > MAX_PASSES:
        raise ValueError(f"curate.tokens = {tokens:g} {unit} (x{top:g} at the top of curate.frontier) is {implied:.4g} "
                         f"epochs over all {unique} unique {unit} of the curated sources; more than {MAX_PASSES:g} is "
                         "past any repetition law's horizon: lower curate.tokens or curate.frontier, or add data")
    if tokens / max(unique, 1) > 4:
        logger.warning("curate.tokens = %g %s is %.3g epochs over all %d unique %s of the curated sources: past ~4 "
                       "epochs repeated data is worth less than new data (Muennighoff et al. 2023)", tokens, unit,
                       tokens / max(unique, 1), unique, unit)


def check(cfg, sources, target) -> None:
    """Every check :func:`run` makes before it writes (for ``datamix info CONFIG``)."""
    _validate(curate_config(cfg), sources, target, getattr(cfg, "resolve", None))


def check_pool_runs(ccfg: CurateConfig, trainer, available: dict, *, after: str = "") -> None:
    """Refuse pool runs smaller than one batch of a compute-bound proxy (the smallest: 1/buckets of the
    smallest source, at the smallest pass), naming the source; ``after`` says what shrank it (dedup)."""
    from datamix.proxy.trainers import ProxyTrainer

    if isinstance(trainer, ProxyTrainer) and not trainer.compute_bound:
        return  # a converged classifier trains on whatever the run holds, in batches or not
    batch = trainer.batch_size * (1 if isinstance(trainer, ProxyTrainer) else trainer.context)
    name = min(available, key=available.get)
    smallest = available[name] / ccfg.buckets * min(ccfg.passes)
    if smallest < batch:
        raise ValueError(f"the smallest pool run ({smallest:.0f} {trainer.unit} seen: 1/curate.buckets of source "
                         f"{name!r}'s {available[name]} {trainer.unit}{after} x min(curate.passes)) is below one "
                         f"batch of the proxy ({batch} {trainer.unit}); raise the smallest pass, lower "
                         "curate.buckets or curate.trainer.batch_size")


def score_method(ccfg: CurateConfig, trainer) -> str:
    """The configured quality score, ``auto`` resolved: importance for the language model, else EL2N."""
    from datamix.proxy.trainers import LMTrainer

    if ccfg.score.method != "auto":
        return ccfg.score.method
    return "importance" if isinstance(trainer, LMTrainer) else "el2n"


# ------------------------------------------------------------------------------------------------ stages
def _labels_key(y) -> np.ndarray:
    return np.zeros(0, dtype=object) if y is None else y.astype(str).astype(object)


def _subset_source(s, rows: np.ndarray):
    """The rows of a source, its sample ids kept (row-number ids are stored as a column first)."""
    from datamix.data.sources import Source

    ds, id_field = s.dataset, s.id_field
    if id_field is None:
        id_field = "_datamix_id"
        ds = ds.add_column(id_field, s.ids.tolist())
    return Source(name=s.name, dataset=ds.select(rows), field=s.field, kind=s.kind, label_field=s.label_field,
                  id_field=id_field, price=s.price, offer_size=s.offer_size, origin=s.origin)


def dedup_stage(ccfg: CurateConfig, run_dir: RunDir, sources, features: dict, data: dict, trainer, seed: int):
    """Remove exact and near-duplicate documents across sources (text; on by default there) before any
    pool is formed; returns (sources, features, data, summary), all restricted to the kept rows."""
    from datamix.prune.dedup import dedup_sources

    on = ccfg.dedup if ccfg.dedup is not None else all(s.kind == "text" for s in sources)
    if not on:
        return sources, features, data, None
    texts = {s.name: [str(t) for t in s.samples()] if s.kind == "text" else [repr(v) for v in s.samples()]
             for s in sources}
    key = {"eps": ccfg.dedup_eps, "seed": seed, "data": {s.name: _data_key(features[s.name]) for s in sources}}

    def compute() -> dict:
        res = dedup_sources(texts, {n: f[0] for n, f in features.items()}, eps=ccfg.dedup_eps, seed=seed)
        return {"rows": {n: np.flatnonzero(m).tolist() for n, m in res.keep.items()}, "summary": res.summary()}

    result = run_dir.cached("dedup.json", key, compute)
    summary = result["summary"]
    out_sources, out_features, out_data = [], {}, {}
    for s in sources:
        rows = np.asarray(result["rows"][s.name], dtype=np.int64)
        out_sources.append(_subset_source(s, rows))
        X, y = features[s.name]
        out_features[s.name] = (X[rows], None if y is None else y[rows])
        if s.name in data:
            out_data[s.name] = trainer.subset(data[s.name], rows)
    removed = sum(v["rows"] - v["kept"] for v in summary.values())
    logger.info("dedup removed %d of %d documents (%s)", removed, sum(v["rows"] for v in summary.values()),
                {n: v["rows"] - v["kept"] for n, v in summary.items()})
    return out_sources, out_features, out_data, summary


def _data_key(pair) -> str:
    from datamix.optimize import fingerprint

    return fingerprint(pair[0], _labels_key(pair[1]))[:16]


def _score_key(ccfg: CurateConfig, method: str, X: np.ndarray, y, seed: int, extra: str = "") -> str:
    from datamix.optimize import fingerprint

    options = np.array([ccfg.score.model_dump_json(), method, str(seed), extra], dtype=object)
    return fingerprint(X, _labels_key(y), options)


def _method(method: str, ccfg: CurateConfig, y, source=None) -> str:
    """The scoring method used for a source: EL2N needs two classes (a one-class source gets
    prototypes); a source without the score column (allowed only when it is not filtered) gets none."""
    if method == "el2n" and (y is None or np.unique(y).size < 2):
        return "prototype"
    if method == "column" and source is not None and ccfg.score.column not in source.dataset.column_names:
        return "none"
    return method


def _compute_scores(ccfg: CurateConfig, method: str, source, X: np.ndarray, y, seed: int) -> np.ndarray:
    sc = ccfg.score
    if method == "none":  # not filtered: every sample ranks alike (row order)
        return np.zeros(len(X))
    if method == "random":
        import zlib

        return np.random.default_rng([seed, zlib.crc32(source.name.encode())]).random(len(X))
    if method == "column":
        col = np.asarray(source.dataset[sc.column], dtype=np.float64)
        if col.shape != (len(X),) or not np.isfinite(col).all():
            raise ValueError(f"scores missing for source {source.name!r}: column {sc.column!r} must hold one finite "
                             "number per sample")
        return col
    if method == "prototype":
        from datamix.prune import prototype_scores

        k = sc.n_clusters or max(2, int(round(np.sqrt(len(X)))))
        return -prototype_scores(X, n_clusters=min(k, len(X)), seed=seed, device="cpu")
    from datamix.prune import el2n, record_dynamics

    runs = record_dynamics(X, y, seeds=sc.seeds, model="linear", epochs=sc.epochs, device="cpu")
    return -el2n(runs)


def _importance(sources, target, trainer, seed: int) -> dict:
    """Importance scores of every document of every source, against one pool LM and one target LM."""
    from datamix.prune.lm_scores import importance_scores

    texts = [str(t) for s in sources for t in s.samples()]
    values = importance_scores(texts, [str(t) for t in target.samples()], tokenizer=trainer.tokenizer, seed=seed,
                               width=trainer.width, depth=trainer.depth, heads=trainer.heads,
                               context=trainer.context, batch_size=trainer.batch_size, lr=trainer.lr,
                               device=trainer.device)
    bounds = np.cumsum([0] + [len(s) for s in sources])
    return {s.name: values[a:b] for s, a, b in zip(sources, bounds[:-1], bounds[1:])}


def _cached_scores(run_dir: RunDir, name: str, key: str) -> np.ndarray | None:
    """The scores kept in ``scores/<name>.npy`` when its record holds ``key`` and the file its
    checksum; None otherwise (a damaged file is named in a warning and recomputed)."""
    path, meta = run_dir.path("scores", f"{name}.npy"), run_dir.path("scores", f"{name}.json")
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not path.exists():
        return None
    if record.get("sha256") != file_sha256(path):
        logger.warning("%s does not match its checksum in %s (changed or damaged); recomputing it", path, meta.name)
        return None
    return np.load(path, allow_pickle=False)


def score_stage(ccfg: CurateConfig, run_dir: RunDir, sources, features: dict, seed: int, *, method: str,
                target=None, trainer=None) -> tuple[dict, dict]:
    """Quality scores per source (higher = better), cached in ``scores/<name>.npy``; and a summary
    (method, reused, mean, std) per source. A source scored by ``none`` has all-zero scores.
    ``importance`` scores all sources at once (one LM on their union, one on the target)."""
    extra = ""
    if method == "importance":  # every source's scores depend on all sources, the target and the LM
        from datamix.optimize import fingerprint

        texts = np.array([str(t) for x in list(sources) + [target] for t in x.samples()], dtype=object)
        extra = trainer.signature + fingerprint(texts)
    keys = {s.name: _score_key(ccfg, _method(method, ccfg, features[s.name][1], s), *features[s.name], seed, extra)
            for s in sources}
    cached = {s.name: values for s in sources
              if (values := _cached_scores(run_dir, s.name, keys[s.name])) is not None}
    fresh = {}
    if method == "importance" and len(cached) < len(sources):
        t0 = time.perf_counter()
        fresh = _importance(sources, target, trainer, seed)
        seconds = (time.perf_counter() - t0) / len(sources)
    scores, summary = {}, {}
    for s in sources:
        X, y = features[s.name]
        used = _method(method, ccfg, y, s)
        if s.name in cached:
            values, reused = cached[s.name], True
        else:
            t0 = time.perf_counter()
            values = np.asarray(fresh[s.name] if s.name in fresh else _compute_scores(ccfg, used, s, X, y, seed),
                                dtype=np.float64)
            npy = save_npy(run_dir.path("scores", f"{s.name}.npy"), values)
            write_json(run_dir.path("scores", f"{s.name}.json"), {
                "key": keys[s.name], "sha256": file_sha256(npy), "method": used, "n": int(len(values)),
                "seconds": round(seconds if s.name in fresh else time.perf_counter() - t0, 3)})
            reused = False
        scores[s.name] = values
        if used != method:
            logger.info("source %s is scored by %s instead of %s", s.name, used, method)
        summary[s.name] = {"method": used, "reused": reused, "mean": float(values.mean()), "std": float(values.std())}
    return scores, summary


def bucket_rows(scores: np.ndarray, n_buckets: int, sizes: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices of each quality bucket, best first (ranked as :func:`datamix.apply.select_rows` does);
    buckets hold equal shares of the rows, or of ``sizes`` (e.g. tokens per document) when given."""
    order = np.lexsort((np.arange(scores.size), -scores))
    if sizes is None:
        edges = np.round(np.linspace(0, scores.size, n_buckets + 1)).astype(int)
    else:
        cum = np.cumsum(np.asarray(sizes, dtype=np.float64)[order])
        edges = np.searchsorted(cum, np.linspace(0, cum[-1], n_buckets + 1)[1:-1], side="left") + 1
        edges = np.concatenate([[0], np.maximum.accumulate(edges), [scores.size]])
    return [np.sort(order[edges[j]:edges[j + 1]]) for j in range(n_buckets)]


def measure_stage(ccfg: CurateConfig, run_dir: RunDir, sources, data: dict, scores: dict, target_data,
                  trainer, *, engine=None) -> tuple[pd.DataFrame, dict]:
    """Proxy runs on every pool (nested top shares or quality buckets) at ``passes`` multiples of its
    size (samples, or tokens for the language model); returns (runs, pools). The runs of a source
    are trained together on ``engine`` (:func:`datamix.engine.get_engine`; Ray: one task each)."""
    from datamix.data.sources import Source
    from datamix.engine import get_engine
    from datamix.proxy.runs import MixtureRunner

    engine = get_engine(engine)
    frames, pools = [], {}
    for s in sources:
        d = data[s.name]
        unit_sizes = None if trainer.unit == "samples" else d.lengths
        buckets = bucket_rows(scores[s.name], ccfg.buckets, unit_sizes)
        if ccfg.pools == "nested":  # the top 1/m, 2/m, ..., all of the source
            buckets = [np.sort(np.concatenate(buckets[:j + 1])) for j in range(len(buckets))]
            names = [f"{s.name}.top{round(100 * (j + 1) / len(buckets))}" for j in range(len(buckets))]
        else:
            names = [f"{s.name}.q{j + 1}" for j in range(len(buckets))]
        pool_sources, feats = [], {}
        for name, rows in zip(names, buckets):
            pool_sources.append(Source(name=name, dataset=s.dataset.select(rows), field=s.field, kind=s.kind,
                                       label_field=s.label_field, id_field=s.id_field, origin=f"{s.origin}#{name}"))
            feats[name] = trainer.subset(d, rows)
        pools[s.name] = {name: trainer.size_of(feats[name]) for name in names}
        runner = MixtureRunner(pool_sources, target_data, trainer=trainer, table=run_dir.path("runs.csv"),
                               features=feats, engine=engine)
        alone = dict(zip(names, np.eye(len(names))))  # the ratios of each pool trained alone
        runs = [(name, n, seed) for name in names
                for n in sorted({max(1, int(round(m * pools[s.name][name]))) for m in ccfg.passes})
                for seed in ccfg.seeds]
        df = runner.measure_runs([(alone[name], n, seed) for name, n, seed in runs])
        pool = [name for name, _, _ in runs]
        frames.append(pd.DataFrame({"pool": pool, "source": s.name, "n": df["size"].to_numpy(dtype=float),
                                    "S": [float(pools[s.name][name]) for name in pool],
                                    "seed": df["seed"].to_numpy(), "metric": df["metric"].to_numpy(),
                                    "epochs": df["epochs"].to_numpy(dtype=float), "reused": df["reused"].to_numpy()}))
    return pd.concat(frames, ignore_index=True), pools


def interaction_design(k: int) -> np.ndarray:
    """Mixtures that identify the pairwise interaction term of ``k`` sources, shape (n_mixtures, k):
    every 50/50 pair and the uniform mixture (for 2 sources 1/4, 1/2 and 3/4)."""
    if k == 2:
        return np.array([[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]])
    pairs = [np.eye(k)[i] / 2 + np.eye(k)[j] / 2 for i in range(k) for j in range(i + 1, k)]
    return np.array(pairs + [np.full(k, 1.0 / k)])


def mixture_stage(ccfg: CurateConfig, run_dir: RunDir, sources, data: dict, target_data, trainer, tokens: float,
                  *, engine=None) -> pd.DataFrame | None:
    """Unfiltered proxy runs of :func:`interaction_design`'s mixtures at the budget, at every seed
    (kept in ``runs.csv`` and reused like the pool runs); None when ``curate.interactions`` is off
    or there is one source. Columns ``p_<source>``, n, seed, metric, epochs, reused."""
    from datamix.engine import get_engine
    from datamix.proxy.runs import MixtureRunner, ratio_columns

    names = [s.name for s in sources]
    if not ccfg.interactions or len(names) < 2:
        return None
    runner = MixtureRunner(sources, target_data, trainer=trainer, table=run_dir.path("runs.csv"),
                           features={n: data[n] for n in names}, engine=get_engine(engine))
    df = runner.measure_runs([(p, max(1, int(round(tokens))), seed)
                              for p in interaction_design(len(names)) for seed in ccfg.seeds])
    out = df[ratio_columns(names)].astype(float)
    out["n"] = df["size"].to_numpy(dtype=float)
    for c in ("seed", "metric", "epochs", "reused"):
        out[c] = df[c].to_numpy()
    return out


def fit_stage(ccfg: CurateConfig, runs: pd.DataFrame, pools: dict, n_target: int, seed: int, *,
              greater_is_better: bool = True, mixtures: pd.DataFrame | None = None):
    """The QQT law on the pool runs and its predictor: error = 1 - accuracy for a classifier, the
    metric itself (bits per byte) for the language model; the interaction term on ``mixtures``
    (:func:`mixture_stage`) when given."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from datamix.laws.qqt import QualityQuantity
    from datamix.predict.laws import QualityPredictor

    X = runs[["pool", "n", "S"]].reset_index(drop=True)
    metric = runs["metric"].to_numpy(dtype=float)
    y = np.clip(1.0 - metric, 0.5 / n_target, None) if greater_is_better else metric  # a perfect score is < 1 error
    # three best grid starts: the Huber loss (delta 1e-3) is nearly L1 and the full grid of starts took
    # 40 s on the digits runs for a 0.5% lower cost (2 cores); 3000 iterations: the digits fit converges
    # at ~2750 (3 s), where 300 stopped short and the summary flagged the law as not converged
    bounds = None if ccfg.floor_cap is None else {"d": (0.0, ccfg.floor_cap * float(y.min()))}
    law = QualityQuantity(n_starts=3, max_iter=3000, tol=1e-9, n_bootstrap=ccfg.n_bootstrap, seed=seed, bounds=bounds)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        # one BLAS thread: L-BFGS-B on this small problem took 11 s with two threads, 0.3 s with one
        warnings.simplefilter("always", ConvergenceWarning)
        law.fit(X, y)
    for w in caught:
        logger.info("QQT fit: %s", w.message)
    if mixtures is not None and greater_is_better:  # a perfect score is < 1 error, as for the pool runs
        mixtures = mixtures.assign(metric=np.clip(mixtures["metric"], None, 1.0 - 0.5 / n_target))
    predictor = QualityPredictor(law, pools=pools, nested=ccfg.pools == "nested",
                                 output="accuracy" if greater_is_better else "error").fit(mixtures=mixtures)
    return law, predictor, X, y


def _train_on(plan_like: dict, data: dict, scores: dict, target_data, trainer, seed: int, unit_sizes: dict) -> dict:
    """Train the proxy on ``{name: (ratio, keep_fraction, epochs)}``: the rows apply_plan keeps, each
    source streamed for its epochs over them; the trainer's result (metric, seen, unique, ...)."""
    from datamix.apply import select_rows

    names, parts, counts = [], [], []
    for name, (r, q, e) in plan_like.items():
        if r <= 0:
            continue
        sizes = unit_sizes.get(name)
        sel = select_rows(scores[name], q, e, seed=seed, name=name, sizes=sizes)
        names.append(name)
        parts.append(trainer.subset(data[name], sel.rows))
        counts.append(int((sel.repeats * (1 if sizes is None else sizes[sel.rows])).sum()))
    return trainer.train_mixture(parts, names, np.array(counts), target_data, seed=seed)


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
    for m in names:
        mixtures[f"only {m}"] = _mixture(names, {n: float(n == m) for n in names}, ones, available, tokens)
    return mixtures


def _predicted(ccfg: CurateConfig, predictor, names, mix: dict, tokens: float) -> dict:
    p = np.array([mix[n][0] for n in names])
    q = np.array([mix[n][1] for n in names])
    lo, hi = predictor.predict_interval(p, tokens, q=q, level=ccfg.level)
    return {"ratios": dict(zip(names, p.tolist())), "keep_fractions": dict(zip(names, q.tolist())),
            "predicted": float(predictor.predict(p, tokens, q=q)), "interval": [lo, hi],
            "interval_calibrated": predictor.calibrated(p, tokens, q=q)}


def predict_stage(ccfg: CurateConfig, predictor, names, available, tokens) -> pd.DataFrame:
    """Predicted metric (with interval) at the budget of every reference mixture; one row each."""
    rows = []
    for label, mix in reference_mixtures(names, available, tokens).items():
        pred = _predicted(ccfg, predictor, names, mix, tokens)
        rows.append({"mixture": label, **{f"p_{n}": pred["ratios"][n] for n in names},
                     "predicted": pred["predicted"], "lo": pred["interval"][0], "hi": pred["interval"][1]})
    return pd.DataFrame(rows)


def verify_stage(ccfg: CurateConfig, plan, predictor, names, available, tokens, data, scores, target_data,
                 trainer, unit_sizes) -> dict:
    """Train the proxy on the plan and on the reference mixtures at the same budget; measured metric per mixture."""
    return {label: _measured(ccfg, predictor, names, mix, tokens, data, scores, target_data, trainer, unit_sizes)
            for label, mix in reference_mixtures(names, available, tokens, plan).items()}


def _interval_text(pred: dict) -> str:
    """``[lo, hi]`` of a predicted mixture, marked when it lies past where the law's error was measured."""
    lo, hi = pred["interval"]
    return f"[{lo:.4g}, {hi:.4g}]" + ("" if pred.get("interval_calibrated", True) else " not calibrated (past "
                                       "the pool runs farther than the law's error was checked)")


def _measured(ccfg: CurateConfig, predictor, names, mix: dict, tokens: float, data, scores, target_data, trainer,
              unit_sizes) -> dict:
    """``mix`` predicted and trained at every ``verify_seeds``: mean, sample std and runs of the metric."""
    results = [_train_on(mix, data, scores, target_data, trainer, seed, unit_sizes) for seed in ccfg.verify_seeds]
    values = [r["metric"] for r in results]
    return {**_predicted(ccfg, predictor, names, mix, tokens), "seen": int(results[0]["seen"]),
            "unique": int(results[0]["unique"]), "measured": float(np.mean(values)),
            "measured_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "measured_runs": [float(v) for v in values]}


def best_pool(predictor, names, available: dict, pools: dict, *, judged_at: float, budget: float) -> tuple[str, dict]:
    """The "keep only the best data" strategy: of every source's top quality pool, the one the law
    predicts best at ``judged_at`` (a small budget, where repetition does not yet cost), trained
    alone for ``budget``, repeated as needed; ``(pool name, {name: (ratio, keep, epochs)})``."""
    candidates = {}
    for src in names:
        pool, size = next(iter(pools[src].items()))  # best first
        keeps = {n: (size / available[n] if n == src else 1.0) for n in names}
        candidates[pool] = {n: (float(n == src), keeps[n]) for n in names}
    sign = 1.0 if predictor.greater_is_better else -1.0

    def score(pool):
        p, q = (np.array([candidates[pool][n][k] for n in names]) for k in (0, 1))
        return sign * float(predictor.predict(p, judged_at, q=q))

    pool = max(candidates, key=score)
    ratios, keeps = ({n: v[k] for n, v in candidates[pool].items()} for k in (0, 1))
    return pool, _mixture(names, ratios, keeps, available, budget)


def frontier_check_stage(ccfg: CurateConfig, frontier, predictor, names, available, tokens, pools, data, scores,
                         target_data, trainer, unit_sizes) -> dict:
    """Measure the frontier's decision at its smallest and largest budgets (issue 6b): the plan
    against keeping everything (natural mixture, unfiltered) at the smallest, and against keeping only
    the best pool at the largest, each at ``verify_seeds``. ``outcome`` is ``better`` / ``worse`` when
    the difference of the seed means exceeds two seed standard deviations (pooled), else ``tie``."""
    frame = frontier.to_frame()
    total = sum(available.values())
    out = {}
    for which, i in (("smallest", 0), ("largest", len(frame) - 1)):
        row = frame.iloc[i]
        budget = float(row["budget"])
        plan = {n: (float(row[f"ratio_{n}"]), float(row[f"keep_{n}"]), float(row[f"epochs_{n}"])) for n in names}
        if which == "smallest":
            label = "keep everything"
            other = _mixture(names, {n: available[n] / total for n in names}, dict.fromkeys(names, 1.0),
                             available, budget)
        else:
            pool, other = best_pool(predictor, names, available, pools, judged_at=float(frame["budget"].iloc[0]),
                                    budget=budget)
            label = f"only {pool}"
        entry = {"budget": budget, "multiple": budget / tokens, "against": label}
        for name, mix in (("plan", plan), (label, other)):
            entry[name] = _measured(ccfg, predictor, names, mix, budget, data, scores, target_data, trainer,
                                    unit_sizes)
        diff = entry["plan"]["measured"] - entry[label]["measured"]
        sd = float(np.sqrt((entry["plan"]["measured_std"] ** 2 + entry[label]["measured_std"] ** 2) / 2))
        gain = diff if trainer.greater_is_better else -diff
        entry.update(difference=diff, sd=sd,
                     outcome="tie" if abs(diff) <= 2 * sd else ("better" if gain > 0 else "worse"))
        out[which] = entry
    return out


# ------------------------------------------------------------------------------------------------ run
@one_writer
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

    check_until("curate", STAGES, until)
    t_start = time.perf_counter()
    timings = {}
    ccfg = curate_config(cfg, options)
    sources, target = load_sources(cfg, run_dir)
    resolved = _validate(ccfg, sources, target, getattr(cfg, "resolve", None))
    names, chosen, available, tokens = (resolved[k] for k in ("names", "sources", "available", "tokens"))
    trainer = resolved["trainer"]
    seed = int(getattr(cfg, "seed", 0))
    metrics = {
        "datamix_version": __version__,
        "pipeline": "curate",
        "curate_config": ccfg.model_dump(mode="json"),
        "sources": {s.name: {"n": len(s), "kind": s.kind, "price": s.price} for s in chosen},
        "target": {"name": target.name, "n": len(target)},
        "trainer": trainer.signature,
        "unit": trainer.unit,
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
    features = {s.name: load_features(run_dir, s) for s in chosen}
    target_features = load_features(run_dir, target)
    timings["embed"] = time.perf_counter() - t0
    if done("embed"):
        return metrics

    t0 = time.perf_counter()
    docs = resolved["docs"]
    data = {n: docs[n] for n in names} if docs else dict(features)
    target_data = docs[target.name] if docs else target_features
    chosen, features, data, metrics["dedup"] = dedup_stage(ccfg, run_dir, chosen, features, data, trainer, seed)
    if metrics["dedup"] is not None:
        available = {n: trainer.size_of(data[n]) for n in names}
        check_pool_runs(ccfg, trainer, available, after=" left after dedup")
        resolved["available"] = available
        if ccfg.tokens is None:
            tokens = metrics["tokens"] = int(sum(available.values()))
    unit_sizes = {n: data[n].lengths for n in names} if trainer.unit == "tokens" else {}
    metrics["units"] = {n: {"rows": trainer.rows_of(data[n]), trainer.unit: available[n]} for n in names}
    scores, metrics["score"] = score_stage(ccfg, run_dir, chosen, features, seed, method=resolved["score_method"],
                                           target=target, trainer=trainer)
    timings["score"] = time.perf_counter() - t0
    if done("score"):
        return metrics

    t0 = time.perf_counter()
    runs, pools = measure_stage(ccfg, run_dir, chosen, data, scores, target_data, trainer,
                                engine=getattr(cfg, "engine", None))
    write_text(run_dir.path("pool_runs.csv"), runs.to_csv(index=False, float_format="%.10g"))
    mixtures = mixture_stage(ccfg, run_dir, chosen, data, target_data, trainer, tokens,
                             engine=getattr(cfg, "engine", None))
    every = runs if mixtures is None else pd.concat([runs, mixtures])
    if mixtures is not None:
        write_text(run_dir.path("mixture_runs.csv"), mixtures.to_csv(index=False, float_format="%.10g"))
    metrics["runs"] = {"total": int(len(every)), "trained": int((~every["reused"].astype(bool)).sum()),
                       "reused": int(every["reused"].astype(bool).sum()),
                       "mixtures": 0 if mixtures is None else int(len(mixtures))}
    timings["measure"] = time.perf_counter() - t0
    if done("measure"):
        return metrics

    t0 = time.perf_counter()
    law, predictor, X_law, y_law = fit_stage(ccfg, runs, pools, trainer.rows_of(target_data), seed,
                                             greater_is_better=trainer.greater_is_better, mixtures=mixtures)
    metrics["law"] = {"params": law.params_, "converged": bool(law.converged_),
                      "mean_abs_rel_error": -float(law.score(X_law, y_law)),
                      "interactions": predictor.interactions_,
                      "mixture_loo_error": (float(np.mean(predictor.mixture_residuals_))
                                            if predictor.mixture_residuals_.size else None)}
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
    # the optimizer reads thresholds off one score per unit: a document's score once per token
    unit_scores = {n: np.repeat(v, unit_sizes[n]) for n, v in scored.items()} if unit_sizes else scored
    data_keys = _data_fingerprints(features, target_features)
    budgets = [tokens * m for m in ccfg.frontier]
    caps = epoch_caps(ccfg, [tokens] + budgets, available, constraints)  # of the deduplicated sources
    plan = edited_plan(run_dir, available)
    if plan is None:
        plan = optimize_mixture(predictor, tokens=tokens, sources=available, seed=seed, scores=unit_scores,
                                n_starts=ccfg.n_starts, level=ccfg.level, **{**constraints, "max_epochs": caps[0]})
        plan.provenance["law"] = {"name": "QualityQuantity", "form": law.form, "converged": bool(law.converged_)}
        plan.provenance["inputs_data"] = dict(data_keys)
        write_plan(run_dir, plan)
    else:
        implied = sum(plan.epochs.get(n, 0.0) * plan.keep_fractions.get(n, 1.0) * available[n] for n in names)
        mix = {n: (plan.ratios.get(n, 0.0), plan.keep_fractions.get(n, 1.0), 0.0) for n in names}
        metrics["edited_plan"] = {**_predicted(ccfg, predictor, names, mix, implied), "tokens": implied}
    metrics["data_sufficiency"] = data_sufficiency(plan, available, runs, trainer.unit)
    for line in metrics["data_sufficiency"]["warnings"]:
        logger.warning("%s", line)
    frontier = threshold_curve(predictor, budgets, sources=available, seed=seed,
                               **{k: v for k, v in constraints.items() if k not in ("thresholds", "max_epochs")},
                               max_epochs=caps[1:], thresholds=constraints["thresholds"],
                               n_starts=max(2, ccfg.n_starts // 2))
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
                         shard_size=ccfg.shard_size, engine=getattr(cfg, "engine", None), sizes=unit_sizes or None),
        check=lambda m: manifest_intact(curated, m))
    metrics["manifest"] = {"total_samples": manifest["total_samples"], "total_unique": manifest["total_unique"]}
    timings["apply"] = time.perf_counter() - t0
    if done("apply"):
        return metrics

    t0 = time.perf_counter()
    verified = None
    if ccfg.verify:
        key = {"plan": plan.to_dict(), "seeds": list(ccfg.verify_seeds), "trainer": trainer.signature,
               "tokens": tokens, **inputs}
        verified = run_dir.cached("verify.json", key, lambda: verify_stage(
            ccfg, plan, predictor, names, available, tokens, data, scores, target_data, trainer, unit_sizes))
    metrics["verified"] = verified
    metrics["check"] = None if not verified else compare_plan(verified, trainer.greater_is_better)
    if ccfg.verify and ccfg.verify_frontier:
        key = {"frontier": metrics["frontier"], "seeds": list(ccfg.verify_seeds), "trainer": trainer.signature,
               "pools": pools, **inputs}
        metrics["frontier_check"] = run_dir.cached("frontier_check.json", key, lambda: frontier_check_stage(
            ccfg, frontier, predictor, names, available, tokens, pools, data, scores, target_data, trainer,
            unit_sizes))
    timings["verify"] = time.perf_counter() - t0
    if done("verify", record=ccfg.verify):  # recorded only when the config asks for it
        return metrics

    t0 = time.perf_counter()
    report = _report(run_dir, ccfg, plan, law, X_law, y_law, pools, runs, mixtures, predictor, frontier, verified,
                     tokens, trainer, resolved, metrics)
    metrics["report"] = {"html": report.html.name, "markdown": report.markdown.name,
                         "figures": sorted(f"figures/{p.name}" for p in report.figures.values())}
    timings["report"] = time.perf_counter() - t0
    done("report")
    logger.info("curate done in %.1f s: predicted %.4f; %s", time.perf_counter() - t_start, plan.predicted,
                metrics["check"])
    return metrics


def write_plan(run_dir: RunDir, plan) -> None:
    """``plan.yaml`` and ``plan.json``, and the checksum of the YAML in ``optimize.json``: a
    ``plan.yaml`` that no longer matches it was edited by hand (:func:`edited_plan`)."""
    text = plan.to_yaml(run_dir.path("plan.yaml"))
    plan.to_json(run_dir.path("plan.json"))
    write_json(run_dir.path("optimize.json"), {"plan_sha256": hashlib.sha256(text.encode()).hexdigest()})


def edited_plan(run_dir: RunDir, available: dict):
    """The run's ``plan.yaml`` when it was edited after datamix wrote it, checked against the sources
    (:func:`datamix.optimize.plan.check_plan`); None when there is none or it is datamix's own.

    An edited plan is used as it is by the stages after optimize (apply, verify, report) and
    never overwritten; delete it to have datamix plan again.
    """
    from datamix.optimize import Plan
    from datamix.optimize.plan import check_plan

    path, record = run_dir.path("plan.yaml"), run_dir.path("optimize.json")
    if not (path.is_file() and record.is_file()):
        return None
    try:
        written = json.loads(record.read_text()).get("plan_sha256")
    except (OSError, ValueError, AttributeError):
        written = None
    if file_sha256(path) == written:
        return None
    try:
        plan = check_plan(Plan.from_yaml(path), available, where=str(path))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc}); fix it, or delete it to have datamix plan again") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{exc if str(path) in str(exc) else f'{path}: {exc}'}; fix it, or delete it to have "
                         "datamix plan again") from None
    logger.warning("%s was edited after datamix wrote it: using it as it is (delete it to have datamix plan "
                   "again)", path)
    return plan


def compare_plan(verified: dict, greater_is_better: bool) -> dict:
    """The measured plan against every other verified mixture: ``better``, ``worse`` or ``tie`` (the
    difference within two standard errors of the difference of the seed means), with the numbers;
    ``same mixture`` where the baseline is the plan itself (e.g. unfiltered when the plan filters nothing)."""
    plan = verified["plan"]
    out = {}
    for label, v in verified.items():
        if label == "plan":
            continue
        diff = plan["measured"] - v["measured"]
        if _same_mixture(plan, v):
            out[label] = {"outcome": "same mixture", "difference": float(diff), "se": 0.0}
            continue
        n = max(1, len(plan["measured_runs"]))
        se = float(np.sqrt((plan["measured_std"] ** 2 + v["measured_std"] ** 2) / n))
        gain = diff if greater_is_better else -diff
        outcome = "tie" if abs(diff) <= 2 * se else ("better" if gain > 0 else "worse")
        out[label] = {"outcome": outcome, "difference": float(diff), "se": se}
    singles = {k: v for k, v in verified.items() if k.startswith("only ")}
    if singles:
        best = (max if greater_is_better else min)(singles, key=lambda k: singles[k]["measured"])
        out["best single source"] = {**out[best], "source": best.removeprefix("only ")}
    return out


def _same_mixture(a: dict, b: dict) -> bool:
    """Whether two verified mixtures train on the same data: equal ratios and, where used, keep-fractions."""
    return all(abs(a["ratios"][n] - b["ratios"][n]) < 1e-9
               and (a["ratios"][n] == 0 or abs(a["keep_fractions"][n] - b["keep_fractions"][n]) < 1e-9)
               for n in a["ratios"])


def data_sufficiency(plan, available: dict, runs: pd.DataFrame, unit: str, *, limit: float = 4.0) -> dict:
    """Epochs the plan asks of every source against Muennighoff et al. (2023)'s ~4 epochs of nearly
    free repetition, and against the most epochs the pool runs measured (the fitted law's horizon)."""
    horizon = runs.groupby("source")["epochs"].max().to_dict() if "epochs" in runs else {}
    rows, warnings = {}, []
    for name, ratio in plan.ratios.items():
        if ratio <= 0:
            continue
        epochs = float(plan.epochs[name])
        kept = float(plan.keep_fractions.get(name, 1.0)) * available[name]
        rows[name] = {unit: int(available[name]), f"unique {unit} kept": int(round(kept)), "epochs": epochs,
                      "measured up to": float(horizon.get(name, float("nan")))}
        if epochs > limit:
            warnings.append(f"source {name!r}: the plan repeats it {epochs:.1f} times; past ~{limit:g} epochs repeated "
                            "data is worth less than unique data (Muennighoff et al. 2023) — add data or lower tokens")
        if name in horizon and epochs > horizon[name] * 1.0001:
            warnings.append(f"source {name!r}: {epochs:.1f} epochs is beyond the {horizon[name]:.1f} epochs the pool "
                            "runs measured: the repetition law is extrapolated (add larger curate.passes)")
    return {"per_source": rows, "warnings": warnings, "limit": limit}


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


def _data_fingerprints(features, target_features) -> dict:
    out = {n: _data_key(pair) for n, pair in features.items()}
    out["target"] = _data_key(target_features)
    return out


def _report(run_dir, ccfg, plan, law, X_law, y_law, pools, runs, mixtures, predictor, frontier, verified, tokens,
            trainer, resolved, metrics):
    from datamix.proxy.runs import ratio_columns
    from datamix.report import (plot_frontier, plot_law_fit, plot_mixture, plot_predicted_vs_measured,
                                write_report)

    metric = trainer.metric_name.replace("_", " ")
    to_metric = (lambda e: 1.0 - e) if trainer.greater_is_better else (lambda e: e)
    groups = {src: list(p) for src, p in pools.items()}
    fitted = law.predict(X_law)
    if trainer.greater_is_better:  # an error rate: the power law passes 1 at the smallest pools
        fitted = np.clip(fitted, 0.0, 1.0)
    fit_pts = pd.DataFrame({"measured": to_metric(y_law), "predicted": to_metric(fitted),
                            "label": "pool runs (fit)"})
    rows = [fit_pts]
    if mixtures is not None:
        names = predictor.sources_
        P = mixtures[ratio_columns(names)].to_numpy(float)
        rows.append(pd.DataFrame({"measured": mixtures["metric"].to_numpy(float), "label": "mixture runs (fit)",
                                  "predicted": [predictor.predict(dict(zip(names, p)), n)
                                                for p, n in zip(P, mixtures["n"])]}))
    comparisons = None
    if verified:
        ver = pd.DataFrame([{"label": k, "measured": v["measured"], "predicted": v["predicted"],
                             "lo": v["interval"][0], "hi": v["interval"][1]} for k, v in verified.items()])
        rows.append(ver)
        check = metrics.get("check") or {}
        comparisons = pd.DataFrame([{"mixture": k, f"{trainer.unit} seen": v["seen"],
                                     f"unique {trainer.unit}": v["unique"], "predicted": v["predicted"],
                                     f"{int(round(ccfg.level * 100))}% interval": _interval_text(v),
                                     "measured": v["measured"], "measured_std": v["measured_std"],
                                     "plan vs this": check.get(k, {}).get("outcome", "")}
                                    for k, v in verified.items()])
    figures = {
        "law_fit": plot_law_fit(law, X_law, y_law, groups=groups, level=ccfg.level,
                                ylabel="target error" if trainer.greater_is_better else f"target {metric}"),
        "predicted_vs_measured": plot_predicted_vs_measured(pd.concat(rows, ignore_index=True), metric=metric),
        "threshold_curve": plot_frontier(frontier, chosen=tokens, metric=metric, unit=trainer.unit),
        "mixture": plot_mixture(plan),
    }
    cap = plan.provenance.get("max_epochs")
    inputs = {
        f"compute budget ({trainer.unit} seen)": tokens,
        "money budget": ccfg.budget,
        "max_epochs": ccfg.max_epochs if ccfg.max_epochs is not None or cap is None else
        f"{cap:g} (default: the most passes the pool runs measure)",
        "min_ratio": ccfg.min_ratio,
        "max_ratio": ccfg.max_ratio,
        "filtered sources": resolved["filtered"],
        "quality score": resolved["score_method"],
        "quality levels per source": ccfg.buckets,
        "proxy trainer": trainer.signature,
        "quality pools": f"{ccfg.pools}, {sum(len(p) for p in pools.values())} pools",
        "pool runs": int(len(runs)),
        "law": f"QualityQuantity (form {law.form}), mean abs. rel. error {-law.score(X_law, y_law):.4g}, "
               f"converged: {bool(law.converged_)}",
        "mixture interactions (gamma, log error per p_i p_j; < 0: the pair together does better than the "
        "QQT rule says)": (", ".join(f"{k} {v:+.3f}" for k, v in predictor.interactions_.items())
                           + f"; leave-one-out error {metrics['law']['mixture_loo_error']:.3g} (log ratio)"
                           if predictor.interactions_ else "not fitted (curate.interactions: false)"),
        "gradients": plan.provenance.get("gradients"),
        "seed": plan.provenance.get("seed"),
        "datamix version": __version__,
    }
    for name, row in metrics["data_sufficiency"]["per_source"].items():
        inputs[f"{name}: {trainer.unit} / unique kept / epochs (measured up to)"] = (
            f"{row[trainer.unit]:,} / {row[f'unique {trainer.unit} kept']:,} / {row['epochs']:.2f} "
            f"({row['measured up to']:.1f})")
    if metrics.get("dedup"):
        removed = {n: v["rows"] - v["kept"] for n, v in metrics["dedup"].items()}
        inputs["duplicates removed (exact + near)"] = ", ".join(
            f"{n}: {metrics['dedup'][n]['exact_removed']} + {metrics['dedup'][n]['near_removed']}" for n in removed)
    notes = [f"Mixture ratios and filtering thresholds chosen by datamix {__version__} for a compute budget of "
             f"{tokens:g} {trainer.unit} seen, with a QQT law fitted to {len(runs)} compute-bound proxy runs on "
             "quality pools of every source (the top shares by quality score). 'Compared mixtures' were trained by "
             f"the proxy at the same budget and measured on the target set ({metric}; "
             f"{'higher' if trainer.greater_is_better else 'lower'} is better).",
             f"Filtering: every sample of a source has a '{resolved['score_method']}' quality score, higher = better; "
             f"'threshold' is the score at or above which a sample is kept and 'keep_fraction' the share of the "
             f"source's {trainer.unit} that passes it (nan: the source is not filtered; an unused source has "
             "neither)."]
    sufficiency = metrics["data_sufficiency"]["warnings"]
    notes.append("Data sufficiency: " + ("; ".join(sufficiency) + "." if sufficiency else
                                         f"no source is repeated past {metrics['data_sufficiency']['limit']:g} "
                                         "epochs or past the epochs the pool runs measured."))
    return write_report(run_dir.root, plan, figures=figures, inputs=inputs, comparisons=comparisons,
                        frontier=frontier, title="datamix curate report", notes=notes)
