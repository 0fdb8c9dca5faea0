"""Decide a data purchase from revealed samples: measure → fit OTPredictor → plan → report.

A seller reveals a sample of each source (``Source.offer_size`` is the whole offer, ``price`` the
price of one sample). The pipeline trains proxy models on mixtures of the revealed samples at a
few sizes (runs kept in ``runs.csv`` and reused on rerun; each mixture with its own seeds, so that
mixtures do not share one draw's error — see :func:`_mixture_seeds`), fits an :class:`~datamix.predict.OTPredictor`,
and chooses how many samples to buy from each source within the budget to maximise the predicted
metric. For the bundled scenarios, whose full offers are known, ``verify`` trains on the planned
purchase (and on two simple alternatives) to measure what the prediction promised.

Writes into the run directory: ``config.yaml``, ``runs.csv``, ``plan.yaml`` and ``plan.json``,
``predictions.csv`` (leave-one-out stage-1 predictions), ``verify_runs.csv`` (the verify stage's
trainings), ``report.html`` / ``report.md`` with ``figures/predicted_vs_measured.png``, and ``metrics.json``. ``run(..., until=STAGE)``
(``datamix fit|optimize|report CONFIG``) stops after a stage of :data:`STAGES`, reusing the runs
already in ``runs.csv`` and ``verify_runs.csv``: a rerun trains nothing it has trained before.
"""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
from datamix import __version__
from datamix.config import PurchaseConfig
from datamix.io import write_text
from datamix.run import one_writer

logger = logging.getLogger(__name__)

STAGES = ("measure", "fit", "optimize", "verify", "report")


def _purchase_config(cfg) -> PurchaseConfig:
    if cfg.purchase is None:
        raise ValueError("the purchase pipeline needs a 'purchase:' section with at least a budget")
    return cfg.purchase


def _mixtures(k: int, n: int, seed: int) -> np.ndarray:
    """Every single source, the uniform mixture, then Dirichlet(1) mixtures, ``n`` rows in all."""
    rows = [np.eye(k)[i] for i in range(k)] + [np.full(k, 1.0 / k)]
    rng = np.random.default_rng(seed)
    while len(rows) < n:
        rows.append(np.round(rng.dirichlet(np.ones(k)), 4))
        rows[-1][-1] = 1.0 - rows[-1][:-1].sum()
    return np.clip(np.array(rows[:max(n, 2)]), 0, None)


def _mixture_seeds(seeds: list[int], n_mixtures: int) -> np.ndarray:
    """Seeds of every mixture, shape (n_mixtures, len(seeds)): mixture j at seed s draws with s·n_mixtures + j.

    Draws of one seed are nested, so mixtures measured at one seed share most of their samples and
    their errors (on the bundled digits the errors of mixtures 0.1 apart correlate at 0.6); with a
    seed per mixture the errors are independent and average out in the fit
    (``benchmarks/ot_predictor.py``: stage-1 MAE 1.6 instead of 2.4 points at 20 random trainings).
    A mixture keeps its seeds at every size: its draws stay nested across sizes.
    """
    return np.array([[s * n_mixtures + j for s in seeds] for j in range(n_mixtures)])


def _alternatives(names, prices, offers, budget) -> dict:
    """Purchases to compare with, owned (price 0) sources always in full: buy nothing (owned data
    alone, when there is some), the cheapest samples first, the budget split evenly, and the whole
    budget on each single offer (``only <name>``)."""
    c = np.array([prices[n] for n in names])
    o = np.array([offers[n] for n in names])
    owned = np.where(c == 0, o, 0)
    out = {"buy nothing": owned} if owned.any() else {}
    left, buy = budget, np.zeros(len(names), int)
    for i in np.argsort(c, kind="stable"):
        buy[i] = o[i] if c[i] == 0 else min(o[i], int(np.floor(left / c[i] + 1e-9)))
        left -= buy[i] * c[i]
    out["cheapest_first"] = buy
    share = budget / max(1, int((c > 0).sum()))  # split among the offers: owned data costs nothing
    out["even_spend"] = np.array([o[i] if c[i] == 0 else min(o[i], int(np.floor(share / c[i] + 1e-9)))
                                  for i in range(len(names))])
    for i in np.flatnonzero(c > 0):
        single = owned.copy()
        single[i] = min(o[i], int(np.floor(budget / c[i] + 1e-9)))
        out[f"only {names[i]}"] = single
    return {k: dict(zip(names, v.tolist())) for k, v in out.items() if v.sum() > 0}


def offer_distinct(features: dict, offers: dict, eps: float | None, *, seed: int = 0) -> dict:
    """Distinct samples in each offer, estimated from its revealed embeddings (``features[name][0]``):
    SemDeDup groups at ``eps`` and the Chao-Lin bound (:mod:`datamix.predict.distinct`); every
    offer in full when ``eps`` is None."""
    from datamix.predict.distinct import distinct_in_offer, duplicate_groups

    if eps is None:
        return {n: float(offers[n]) for n in offers}
    out = {}
    for n in offers:
        try:
            out[n] = distinct_in_offer(duplicate_groups(features[n][0], eps, seed=seed), offers[n])
        except ValueError as exc:
            raise ValueError(f"source {n!r}: its revealed samples cannot be grouped into copies ({exc}); "
                             "set purchase.dedup_eps: null to count every sample as distinct") from None
    return out


def cross_validate(make, features: dict, runs, names: list, sizes: list, level: float, *, folds: int = 5,
                   seed: int = 0) -> dict:
    """The predictor checked on the revealed runs alone, no oracle: its error and the coverage of
    its ``level`` intervals on runs it was not fitted on.

    ``held-out size``: fitted on every size but the largest, it predicts the largest (an
    extrapolation, as a purchase asks for). ``held-out mixtures``: the mixtures split into ``folds``
    groups; fitted on the others at every size, it predicts each group's runs. ``make(sizes)`` builds
    an unfitted predictor for those sizes. Each entry: ``runs`` (predicted runs), ``mae`` (mean
    absolute error of the metric), ``coverage`` (share inside their intervals), ``width`` (median).
    """
    import pandas as pd

    cols = [f"p_{n}" for n in names]
    mixture = runs[cols].round(9).astype(str).agg(",".join, axis=1).to_numpy()
    keys = np.random.default_rng(seed).permutation(np.unique(mixture))
    splits = {}
    if len(sizes) >= 3:
        splits["held-out size"] = [(runs["size"] < max(sizes), sizes[:-1])]
    if len(keys) >= folds:
        splits["held-out mixtures"] = [(~np.isin(mixture, part), sizes) for part in np.array_split(keys, folds)]
    out = {}
    for label, parts in splits.items():
        rows = []
        for train, fit_sizes in parts:
            predictor = make(fit_sizes).fit(features, runs[train])
            for _, r in runs[~train].iterrows():
                p, N = r[cols].to_numpy(dtype=float), float(r["size"])
                lo, hi = predictor.predict_interval(p, N, level=level)
                rows.append({"measured": r["metric"], "predicted": float(predictor.predict(p, N)), "lo": lo, "hi": hi})
        df = pd.DataFrame(rows)
        out[label] = {"runs": int(len(df)), "mae": float((df.measured - df.predicted).abs().mean()),
                      "coverage": float(((df.lo <= df.measured) & (df.measured <= df.hi)).mean()),
                      "width": float((df.hi - df.lo).median())}
    return out


def _decision(points: dict, greater_is_better: bool) -> str:
    """The plan in one sentence, saying plainly when no purchase is worth its price: the plan's
    predicted gain over buying nothing inside its own interval."""
    plan, nothing = points["plan"], points.get("buy nothing")
    if nothing is None:
        return f"buy {plan['buy']} for {plan['cost']:g}: predicted {plan['predicted']:.4g}"
    gain = (plan["predicted"] - nothing["predicted"]) * (1 if greater_is_better else -1)
    lo, hi = plan["interval"]
    half = (hi - lo) / 2
    if plan["cost"] == 0 or gain <= half:
        return (f"no purchase is clearly worth its price: the best ({plan['buy']} for {plan['cost']:g}) is predicted "
                f"{gain:+.4g} over the owned data alone ({nothing['predicted']:.4g}), within the plan's own "
                f"interval (+-{half:.2g})")
    return (f"buy {plan['buy']} for {plan['cost']:g}: predicted {plan['predicted']:.4g}, {gain:+.4g} over the owned "
            f"data alone ({nothing['predicted']:.4g}; the plan's interval +-{half:.2g})")


def _verify(cfg, run_dir, names, pcfg, trainer, purchases: dict, *, progress: bool) -> dict:
    """Train on each purchase drawn from the full offers (bundled data only); mean metric over seeds.

    The full offers are embedded like the revealed samples, into the run directory's ``offers/``
    (a run directory of its own); the trainings are kept in the runs table ``verify_runs.csv``: a
    rerun reuses both.
    """
    from datamix.data.bundled import load_scenario
    from datamix.proxy.runs import MixtureRunner
    from datamix.run import RunDir, embed_stage, load_features

    options = {k: v for k, v in cfg.data.options.items() if k != "revealed"}
    full = load_scenario(cfg.data.bundled, seed=cfg.seed, revealed=None, **options)
    offers = [full.source(n) for n in names]
    offers_dir = RunDir(run_dir.path("offers"))
    embed_stage(cfg, offers_dir, offers + [full.target], progress=progress)
    runner = MixtureRunner(offers, load_features(offers_dir, full.target), trainer=trainer,
                           table=run_dir.path("verify_runs.csv"),
                           features={s.name: load_features(offers_dir, s) for s in offers})
    out = {}
    for label, buy in purchases.items():
        counts = np.array([buy[n] for n in names], dtype=float)
        df = runner.measure_many(counts[None, :] / counts.sum(), [int(counts.sum())], seeds=pcfg.seeds)
        std = float(df["metric"].std(ddof=1)) if len(df) > 1 else 0.0
        out[label] = {"mean": float(df["metric"].mean()), "std": std}
    return out


def _figure(loo, points: dict, level: float):
    """Predicted vs measured: the leave-one-out revealed runs, and every verified purchase with its
    interval (a Figure; a purchase is drawn once it has been measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for size, grp in loo.groupby("size"):
        ax.scatter(grp["measured"], grp["predicted"], s=14, alpha=0.7, label=f"revealed runs, N={size} (LOO)")
    colors = itertools.cycle(["black", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan", "tab:pink"])
    for label, pt in points.items():
        if pt.get("measured") is None:
            continue
        lo, hi = pt.get("interval", (pt["predicted"], pt["predicted"]))
        ax.errorbar(pt["measured"], pt["predicted"], yerr=[[pt["predicted"] - lo], [hi - pt["predicted"]]],
                    fmt="*" if label == "plan" else "D", ms=12 if label == "plan" else 7, capsize=3,
                    color=next(colors), label=f"{label}, N={pt['size']}")
    values = np.concatenate([loo["measured"], loo["predicted"]] +
                            [[p["predicted"], p["measured"]] for p in points.values() if p.get("measured") is not None])
    lims = [float(values.min()) - 0.02, float(values.max()) + 0.02]
    ax.plot(lims, lims, "k--", lw=1)
    drawn = any(p.get("measured") is not None for p in points.values())  # purchases carry the intervals
    ax.set(xlim=lims, ylim=lims, xlabel="measured metric", ylabel="predicted metric",
           title="OTPredictor: predicted vs measured" + (f" ({int(level * 100)}% intervals)" if drawn else ""))
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _report(run_dir, plan, loo, points: dict, metrics: dict, pcfg, prices: dict, offers: dict):
    """``report.html`` / ``report.md`` with ``figures/predicted_vs_measured.png``: the decision in a
    sentence, the purchase, every alternative with its prediction, interval, cost and (bundled data)
    measurement, and the inputs."""
    import pandas as pd

    from datamix.report import write_report

    rows = [{"purchase": label, **{f"buy {n}": pt["buy"][n] for n in pt["buy"]}, "cost": pt["cost"],
             "samples": pt["size"], "predicted": pt["predicted"], "lo": pt["interval"][0], "hi": pt["interval"][1],
             "interval calibrated": "yes" if pt["interval_calibrated"] else "no",
             "measured": pt.get("measured"), "measured_std": pt.get("measured_std")} for label, pt in points.items()]
    inputs = {"money budget": pcfg.budget, "prices per sample": prices, "offers (samples)": offers,
              "distinct samples in each offer (estimated from its reveal; purchases are predicted at the "
              "distinct samples they buy)": {n: v["distinct"] for n, v in metrics["sources"].items()},
              "owned sources (price 0, used in full)": ", ".join((metrics.get("owned") or {}).get("sources", [])) or "none",
              "revealed training sizes": pcfg.sizes, "mixtures measured": metrics["runs"]["total"],
              "proxy trainer": plan.provenance.get("trainer"),
              "predictor": f"OTPredictor (form {pcfg.predictor.form}), extrapolation {metrics['predictor']['extrapolation']}",
              "stage-1 leave-one-out MAE": metrics["predictor"]["loo_mae"],
              **{f"{label} (revealed runs): error / coverage of {int(pcfg.level * 100)}% intervals / width":
                 f"{cv['mae']:.4g} / {cv['coverage']:.0%} of {cv['runs']} runs / {cv['width']:.3g}"
                 for label, cv in metrics["cross_validation"].items()},
              "extrapolation factor (plan size / largest revealed size)": metrics["predictor"]["extrapolation_factor"]}
    notes = [metrics["decision"],
             f"Intervals are {int(pcfg.level * 100)}% intervals of the prediction (parameter bootstrap and the size laws' "
             "own residuals). 'interval calibrated': no where a purchase trains past the largest revealed size "
             "farther than the held-out size check measured the extrapolation's error "
             f"(up to {metrics['predictor']['calibrated_size']:g} distinct samples). 'measured' is a proxy training "
             "on the full offers, for bundled data only; elsewhere the leave-one-out revealed runs in the figure are "
             "the check."]
    return write_report(run_dir.root, plan, figures={"predicted_vs_measured": _figure(loo, points, pcfg.level)},
                        inputs=inputs, comparisons=pd.DataFrame(rows), title="datamix purchase report", notes=notes)


def check(cfg, sources, target) -> None:
    """Every check :func:`run` makes before it writes (for ``datamix info CONFIG``)."""
    _validate(_purchase_config(cfg), sources, target)


def _validate(pcfg, sources, target):
    """(names, chosen sources, prices, trainer), or ValueError: everything checked before a write."""
    from datamix.proxy.runs import ProxyTrainer

    if target is None:
        raise ValueError("the purchase pipeline needs a target set (data.target, or a bundled scenario)")
    by_name = {s.name: s for s in sources}
    names = pcfg.sources or list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"purchase.sources names unknown source(s) {unknown}; sources are {list(by_name)}")
    unknown = sorted(set(pcfg.prices) - set(names))
    if unknown:
        raise ValueError(f"purchase.prices names source(s) {unknown} that are not purchased; sources are {names}")
    chosen = [by_name[n] for n in names]
    prices = {s.name: pcfg.prices.get(s.name, s.price) for s in chosen}
    missing = [n for n, p in prices.items() if p is None]
    if missing:
        raise ValueError(f"sources {missing} have no price; give purchase.prices or a price per source")
    unlabelled = [s.name for s in chosen + [target] if s.labels is None]
    if unlabelled:
        raise ValueError(f"{', '.join(map(repr, unlabelled))} ha{'s' if len(unlabelled) == 1 else 've'} no labels: "
                         "purchase predicts with label-aware optimal transport and a classifier proxy, so every "
                         "source and the target need a label field (labels of any type: ints, strings)")
    absent = sorted(set(map(str, np.unique(target.labels))) - {str(c) for s in chosen for c in np.unique(s.labels)})
    if absent:  # no mixture can learn them: predictions near 0 for those classes, which is a data fact to say
        logger.warning("target class(es) %s occur in no purchased source: no mixture can learn them, and every "
                       "prediction includes their loss", absent[:10] + (["..."] if len(absent) > 10 else []))
    trainer = ProxyTrainer.from_dict(pcfg.trainer)
    small = {s.name: len(s) for s in chosen if len(s) < max(pcfg.sizes)}
    if small:  # a single-source run of that size would repeat revealed samples and pass for unique data
        raise ValueError(f"purchase.sizes goes up to {max(pcfg.sizes)} but source(s) reveal fewer samples: "
                         + ", ".join(f"{n} {k}" for n, k in small.items())
                         + f"; keep purchase.sizes <= {min(small.values())} (trainings on revealed samples "
                         "only, each drawn once)")
    return names, chosen, prices, trainer


@one_writer
def run(cfg, run_dir, *, progress: bool = True, until: str | None = None) -> dict:
    """Run the purchase pipeline in ``run_dir``; return the metrics written to ``metrics.json``.

    ``cfg`` is a run config with a ``purchase`` section (a :class:`PurchaseConfig` or a mapping).
    ``progress`` is accepted for the CLI; the stages log (logger ``pipelines.purchase`` and
    ``datamix.*``) instead of drawing bars. ``until`` stops after that stage (default: all):
    ``measure`` (runs.csv), ``fit`` (predictions.csv), ``optimize`` (plan.yaml), ``verify``, ``report``.

    Raises
    ------
    ValueError
        Unknown stage, no ``purchase`` section, unknown source names, a source without a price or
        labels, a training size above a source's revealed samples, a budget that buys nothing.
    """
    # imported here, not at the top: datamix.config may import PurchaseConfig from this module, and
    # datamix.run imports datamix.config
    from datamix.predict import OTPredictor, plan_purchase
    from datamix.predict.distinct import DistinctSamples
    from datamix.proxy.runs import MixtureRunner
    from datamix.run import check_until, embed_stage, load_features, load_sources, stage_done

    check_until("purchase", STAGES, until)
    t0 = time.perf_counter()
    pcfg = _purchase_config(cfg)
    sources, target = load_sources(cfg, run_dir)
    names, chosen, prices, trainer = _validate(pcfg, sources, target)
    offers = {s.name: s.total_size for s in chosen}
    if hasattr(cfg, "to_yaml"):  # nothing was written before this point
        run_dir.save_config(cfg)

    # embed (the shared, resumable stage: vectors pass through, text and images use embed.model)
    embedded = embed_stage(cfg, run_dir, chosen + [target], progress=progress)
    features = {s.name: load_features(run_dir, s) for s in chosen}
    distinct = offer_distinct(features, offers, pcfg.dedup_eps, seed=cfg.seed)  # estimated from the reveals
    for n in names:
        if distinct[n] < 0.9 * offers[n]:
            logger.warning("offer %r: its %d revealed samples hold duplicates; an estimated %.0f of its %d samples "
                           "are distinct: buying more of it buys repeats", n, len(features[n][0]), distinct[n],
                           offers[n])

    # measure
    runner = MixtureRunner(chosen, load_features(run_dir, target), trainer=trainer, table=run_dir.path("runs.csv"),
                           features=features)
    mixtures = _mixtures(len(names), pcfg.n_mixtures, cfg.seed)
    runs = runner.measure_many(mixtures, pcfg.sizes, seeds=_mixture_seeds(pcfg.seeds, len(mixtures)))
    t_measure = time.perf_counter() - t0
    metrics = {
        "datamix_version": __version__,
        "pipeline": "purchase",
        "purchase_config": pcfg.model_dump(mode="json"),
        "embed": embedded,
        "sources": {s.name: {"revealed": len(s), "offer_size": s.total_size, "price": prices[s.name],
                             "distinct": round(distinct[s.name], 1)} for s in chosen},
        "runs": {"total": int(len(runs)), "trained": int((~runs["reused"]).sum()),
                 "reused": int(runs["reused"].sum()), "seconds": round(t_measure, 3)},
        "stages_done": [],
    }

    def stop(stage: str, *, record: bool = True) -> bool:
        """Record ``stage``; True (metrics written) when the run stops after it."""
        if not stage_done(metrics, stage, until, STAGES, record=record):
            return False
        metrics["seconds"] = round(time.perf_counter() - t0, 3)
        run_dir.save_metrics(metrics)
        return True

    if stop("measure"):
        return metrics

    # fit
    X_t, y_t = runner.target_arrays
    predictor = OTPredictor(target=(X_t, y_t), sizes=pcfg.sizes, seed=cfg.seed, **pcfg.predictor.model_dump())
    predictor.fit(features, runs)
    loo = predictor.loo_predictions()
    write_text(run_dir.path("predictions.csv"), loo.to_csv(index=False, float_format="%.6g"))
    loo_mae = float(np.mean(np.abs(loo["measured"] - loo["predicted"])))
    metrics["predictor"] = {"sizes": predictor.sizes_.tolist(), "extrapolation": predictor.extrapolation_,
                            "extrapolation_scores": predictor.extrapolation_scores_, "loo_mae": loo_mae}
    metrics["cross_validation"] = cross_validate(
        lambda sizes: OTPredictor(target=(X_t, y_t), sizes=sizes, seed=cfg.seed, **pcfg.predictor.model_dump()),
        features, runs, names, list(pcfg.sizes), pcfg.level, seed=cfg.seed)
    for label, cv in metrics["cross_validation"].items():
        logger.info("purchase %s: error %.4g, %d%% of %d runs inside their %d%% intervals", label, cv["mae"],
                    round(100 * cv["coverage"]), cv["runs"], round(100 * pcfg.level))
    if stop("fit"):
        return metrics

    # a purchase is predicted at the distinct samples it buys
    buyer = DistinctSamples(predictor, offers=offers, distinct=distinct)

    # plan: owned data (price 0) in full, unless the prediction says it hurts beyond the plan's interval
    owned = [n for n in names if prices[n] == 0]
    choice = plan_purchase(buyer, prices=prices, offers=offers, budget=pcfg.budget, max_iter=pcfg.max_iter,
                           owned=owned)
    ratios = np.array([choice.ratios[n] for n in names])
    interval = buyer.predict_interval(ratios, choice.size, level=pcfg.level)
    if owned:
        free = plan_purchase(buyer, prices=prices, offers=offers, budget=pcfg.budget, max_iter=pcfg.max_iter)
        beyond = free.predicted > interval[1] if predictor.greater_is_better else free.predicted < interval[0]
        metrics["owned"] = {"sources": owned, "used_in_full": not beyond, "partial_use_predicted": free.predicted}
        if beyond:
            logger.warning("the prediction says using all owned data hurts: %s predicted %.4g, outside the interval "
                           "(%.4g, %.4g) of using it all", free.buy, free.predicted, *interval)
            choice = free
            ratios = np.array([choice.ratios[n] for n in names])
            interval = buyer.predict_interval(ratios, choice.size, level=pcfg.level)
    factor = choice.size / max(pcfg.sizes)
    if factor > 4:
        logger.warning("the plan trains on %d samples, %.1fx the largest revealed size %d: stage 2 extrapolates "
                       "that far (benchmarks/ot_predictor.py measured 4-5 accuracy points of error at 4x and, "
                       "with the logit rule, 5-6.5 at 8x); measure larger revealed sizes if the seller allows",
                       choice.size, factor, max(pcfg.sizes))
    points = {"plan": {"buy": choice.buy, "size": choice.size, "cost": round(choice.cost, 6),
                       "predicted": choice.predicted, "interval": list(interval),
                       "interval_calibrated": buyer.calibrated(ratios, choice.size)}}
    for label, buy in _alternatives(names, prices, offers, pcfg.budget).items():
        n = sum(buy.values())
        p = np.array([buy[k] for k in names]) / n
        points[label] = {"buy": buy, "size": int(n), "cost": round(sum(prices[k] * buy[k] for k in names), 6),
                         "predicted": float(buyer.predict(p, n)),
                         "interval": [float(v) for v in buyer.predict_interval(p, n, level=pcfg.level)],
                         "interval_calibrated": buyer.calibrated(p, n)}
    from datamix.optimize import Plan, fingerprint

    inputs = fingerprint(np.array([runner.data_key, trainer.signature], dtype=object))[:16]
    plan = Plan(
        ratios=choice.ratios, keep_fractions={n: 1.0 for n in names}, thresholds={},
        epochs={n: 1.0 for n in names}, buy=choice.buy, predicted=choice.predicted, interval=interval,
        provenance={"datamix_version": __version__, "inputs": inputs, "seed": cfg.seed, "pipeline": "purchase",
                    "predictor": "OTPredictor", "form": pcfg.predictor.form, "sizes": predictor.sizes_.tolist(),
                    "extrapolation": predictor.extrapolation_, "trainer": trainer.signature, "distinct": distinct,
                    "size": choice.size, "cost": round(choice.cost, 6), "budget": pcfg.budget, "level": pcfg.level,
                    "greater_is_better": predictor.greater_is_better,
                    "interval_calibrated": points["plan"]["interval_calibrated"],
                    "stage1": {str(N): {"coef": f.coef.tolist(), "intercept": f.intercept, "alpha": f.alpha}
                               for N, f in predictor.stage1_.items()}},
    )
    plan.to_yaml(run_dir.path("plan.yaml"))
    plan.to_json(run_dir.path("plan.json"))
    metrics["predictor"]["extrapolation_factor"] = round(factor, 3)
    metrics["predictor"]["calibrated_size"] = predictor.calibrated_size_
    metrics["plan"] = plan.to_dict()
    metrics["compared"] = points
    metrics["decision"] = _decision(points, predictor.greater_is_better)
    logger.info("purchase: %s", metrics["decision"])
    if stop("optimize"):
        return metrics

    verified = None
    if pcfg.verify and getattr(cfg.data, "bundled", None):
        verified = _verify(cfg, run_dir, names, pcfg, trainer, {k: v["buy"] for k, v in points.items()},
                           progress=progress)
        for k, v in verified.items():
            points[k]["measured"] = v["mean"]
            points[k]["measured_std"] = v["std"]

    metrics["verified"] = verified
    if stop("verify", record=verified is not None):
        return metrics

    report = _report(run_dir, plan, loo, points, metrics, pcfg, prices, offers)
    metrics["report"] = {"html": report.html.name, "markdown": report.markdown.name,
                         "figures": sorted(f"figures/{p.name}" for p in report.figures.values())}
    stop("report")
    return metrics

