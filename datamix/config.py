"""Run configuration: YAML (safe_load) validated into pydantic models once, at load time.

Errors name the file, the key path and the bad value; an unknown key lists the allowed ones.
Relative paths in a config are relative to the config file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import math
import re

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datamix.data.sources import FORMATS, KINDS, check_name, check_source_name

PIPELINES = ("curate", "purchase", "prune_eval", "runs")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, key and value."""


#: a random seed: numpy and torch take integers in [0, 2**32)
Seed = Annotated[int, Field(ge=0, lt=2**32)]
#: the most passes over the data that a run may imply (see :data:`datamix.optimize.plan.MAX_PLAN_EPOCHS`)
MAX_PASSES = 1000.0
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_device(v: str) -> str:
    if not _DEVICE_RE.match(v):
        raise ValueError(f"device {v!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """One source read from local files or the HF hub.

    price : price of one sample (purchase); offer_size : samples on offer when the files hold only
    the revealed part; owned : data the buyer already has (price 0, used in full by ``purchase``).
    """

    name: str
    path: str | list[str] | None = None
    hub: str | None = None
    split: str = "train"
    format: Literal[tuple(sorted(set(FORMATS.values())))] | None = None  # type: ignore[valid-type]
    field: str = "text"
    kind: Literal[KINDS] = "text"  # type: ignore[valid-type]
    label: str | None = None
    id: str | None = None
    price: float | None = Field(default=None, ge=0)
    offer_size: int | None = Field(default=None, ge=1)
    owned: bool = False

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_source_name(v)

    @model_validator(mode="after")
    def _one_origin(self):
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of 'path' (local files) or 'hub' (a dataset id)")
        if self.owned and (self.price or 0) != 0:
            raise ValueError(f"owned: true with price {self.price}: owned data costs nothing (leave price out)")
        if self.owned and self.offer_size is not None:
            raise ValueError("owned: true with offer_size: an owned source is all there (leave offer_size out)")
        return self


class DataConfig(_Strict):
    """Either a bundled scenario, or sources plus a target set."""

    bundled: str | None = None
    options: dict = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=list)
    target: SourceConfig | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if self.bundled is None and not self.sources:
            raise ValueError("give 'bundled' (a built-in scenario) or a list of 'sources'")
        if self.bundled is not None and (self.sources or self.target):
            raise ValueError("give 'bundled' or 'sources'/'target', not both")
        if self.bundled is None and self.options:
            raise ValueError("'options' apply to a bundled scenario only")
        names = [s.name for s in self.sources] + ([self.target.name] if self.target else [])
        if len({n.lower() for n in names}) != len(names):
            raise ValueError(f"source names must be unique, also ignoring case (their folders would collide on "
                             f"macOS and Windows), got {names}")
        return self


class EmbedConfig(_Strict):
    model: str = "auto"
    batch_size: int | None = Field(default=None, ge=1)
    device: str = "auto"
    shard_size: int = Field(default=4096, ge=1)
    trust_remote_code: bool = False

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        return _check_device(v)


class ScoreConfig(_Strict):
    """Pruning metrics computed on the union of the sources (see datamix.prune.scoring)."""

    metrics: list[Literal["prototypes", "density", "el2n", "grand", "forgetting", "margin"]] = Field(
        default_factory=lambda: ["prototypes", "density", "el2n", "grand", "forgetting", "margin"])
    n_clusters: int | None = Field(default=None, ge=1)
    semdedup_eps: float | None = Field(default=None, gt=0, lt=2)
    dynamics_model: Literal["linear", "mlp"] = "linear"
    dynamics_epochs: int = Field(default=20, ge=1)
    dynamics_seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)


class PruneEvalConfig(_Strict):
    """Score pruning metrics: proxy trainings on kept subsets of the sources, tested on the target."""

    fractions: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.4, 0.7, 1.0], min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    keeps: list[Literal["easy", "hard", "ccs"]] = Field(default_factory=lambda: ["easy", "hard", "ccs"])
    balance: Literal["none", "proportional", "equal"] = "none"
    model: Literal["linear", "mlp"] = "linear"
    epochs: int = Field(default=30, ge=1)

    @field_validator("fractions")
    @classmethod
    def _in_unit_interval(cls, v: list[float]) -> list[float]:
        bad = [f for f in v if not 0 < f <= 1]
        if bad:
            raise ValueError(f"fractions must be in (0, 1], got {bad}")
        return sorted(set(v))


class PredictorConfig(_Strict):
    """Options of the :class:`~datamix.predict.OTPredictor` (see its docstring), as ``purchase`` uses it.

    ``extrapolation`` defaults to ``logit`` here (the class keeps DESIGN's ``two_point``): over 4x-16x
    the largest revealed size, ``benchmarks/ot_predictor.py`` measured a mean error of 5.9 accuracy
    points for logit against 7.8 for two-point (4x 4.79 vs 4.65, 8x 6.46 vs 8.30, 16x 6.4 vs 10.4;
    N = 1,200, 20 trainings), and a purchase usually trains well past the revealed sizes.
    """

    form: Literal["split", "affine", "published", "complete"] = "split"
    reg: float | None = Field(default=None, gt=0)
    label_weight: float = Field(default=1.0, ge=0)
    embedding: str | int | None = None
    ot_mode: Literal["weighted", "sample"] = "weighted"
    n_draws: int = Field(default=1, ge=1)
    alpha: Annotated[float, Field(ge=0)] | Literal["auto"] = 0.0
    extrapolation: Literal["auto", "two_point", "logit", "power_law"] = "logit"
    n_bootstrap: int = Field(default=100, ge=2)


class PurchaseConfig(_Strict):
    """The ``purchase:`` section of a run config.

    budget : money to spend; sources : names to consider (default: all); prices : per-sample
    prices overriding the sources' own; sizes : training sizes measured on the revealed samples;
    n_mixtures : mixtures measured at each size (every single source, the uniform mixture, then
    random ones); seeds : training seeds per mixture; trainer : :class:`~datamix.proxy.runs.ProxyTrainer`
    options; predictor : :class:`PredictorConfig`; level : coverage of the prediction interval;
    max_iter : SLSQP iterations per start of the purchase search; verify : for bundled data, train on the
    purchase to measure it; dedup_eps : revealed samples with cosine similarity above ``1 - eps`` are
    copies of one sample, from which each offer's distinct samples are estimated and a purchase is
    predicted at the distinct samples it buys (:mod:`datamix.predict.distinct`; null: every sample distinct).
    """

    budget: float = Field(gt=0)
    sources: list[str] | None = None
    prices: dict[str, float] = Field(default_factory=dict)
    sizes: list[int] = Field(default_factory=lambda: [25, 50, 100, 200], min_length=1)
    n_mixtures: int = Field(default=20, ge=3)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    trainer: dict = Field(default_factory=lambda: {"model": "logistic"})
    predictor: PredictorConfig = Field(default_factory=PredictorConfig)
    level: float = Field(default=0.9, gt=0, lt=1)
    max_iter: int = Field(default=50, ge=1)
    verify: bool = True
    dedup_eps: float | None = Field(default=0.01, gt=0, lt=2)

    @field_validator("sizes")
    @classmethod
    def _positive_sizes(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"sizes must be positive integers, got {v}")
        return sorted(set(v))

    @field_validator("prices")
    @classmethod
    def _nonnegative_prices(cls, v: dict) -> dict:
        bad = {k: p for k, p in v.items() if not (np.isfinite(p) and p >= 0)}
        if bad:
            raise ValueError(f"prices must be finite and >= 0, got {bad}")
        return v


#: predictors of each kind of runs table (mixtures: :mod:`datamix.predict.runs`; pools and scaling:
#: :mod:`datamix.predict.runs_laws`); ``auto`` chooses among a kind's by held-out error
RUNS_KIND_LAWS = {"mixtures": ("mixing1", "mixing2", "linear", "boosting", "ensemble"),
                  "pools": ("qqt", "qqt_reference"), "scaling": ("data_constrained", "chinchilla")}
RUNS_LAWS = ("auto",) + tuple(n for names in RUNS_KIND_LAWS.values() for n in names)
#: the keys of the ``runs:`` section that only one or two kinds of table read
_RUNS_KIND_KEYS = {
    "mixtures": ("weights", "weight_prefix", "seed_column", "fit_size", "sum_tolerance", "min_ratio", "max_ratio",
                 "max_epochs", "n_samples", "average_top", "extrapolate"),
    "pools": ("pool_column", "pools", "total", "shared"),
    "scaling": ("flops", "size", "base"),
}
_RUNS_SHARED_KEYS = {"seen_column": ("pools", "scaling"), "unique_column": ("pools", "scaling"),
                     "budgets": ("pools", "scaling"), "size_column": ("mixtures", "scaling"),
                     "tokens": ("mixtures", "pools", "scaling")}


class RunsConfig(_Strict):
    """The ``runs:`` section: decide from a table of the user's own training runs.

    kind : what the table holds — ``mixtures`` (mixture weights -> metric: plan a mixture),
    ``pools`` (quality pools trained for a number of samples seen: plan how many of the best pools
    to keep for a budget, QQT) or ``scaling`` ((N params, D tokens seen, U unique tokens) -> loss:
    plan N and D for a compute budget and the unique tokens owned, data-constrained law).

    Every kind: table : the runs table (csv, parquet, json/jsonl; read through HF ``datasets``), one
    row per training; metric : the objective, one metric column, a list of columns (their mean) or a
    mapping column -> weight (a weighted sum); greater_is_better : its direction (false for a loss;
    pools and scaling fit laws of an error or loss, so false); law : ``auto`` (chosen by held-out
    error) or a predictor of the kind (mixtures: mixing1, mixing2, linear, boosting, ensemble;
    pools: qqt, qqt_reference; scaling: data_constrained, chinchilla); select : ``kfold`` (folds
    over the runs) or ``scale`` (mixtures: fitted on fit_size, chosen on the next larger size;
    pools and scaling: fitted on the smallest 70% of runs by samples seen / model size, chosen on
    the rest); folds : k of the k-fold; level : coverage of the intervals.

    Mixtures: weights : the mixture-weight columns, or weight_prefix : the prefix every weight
    column's name starts with (the rest names the source); size_column : model size (parameters) of
    each run, when the table holds several (fit on fit_size, default the smallest; the larger sizes
    report how the ranking transfers); seed_column : training seed (repeated runs of one
    configuration are averaged either way; with it, a seed repeated is refused); sum_tolerance : how
    far a row's weights may sum from 1 (they are then normalised); tokens : tokens of the training
    the plan is for; unique_tokens : unique tokens of each source; min_ratio, max_ratio, max_epochs :
    constraints of the plan (max_epochs needs tokens and unique_tokens); n_samples : random mixtures
    searched for the top pick; average_top : the plan is the mean of that many best sampled
    mixtures (RegMix: 100), 1 = the single best, polished; extrapolate : let the plan give a source
    more (or less) than any run at the fit size gave it (default false: each source's ratio stays
    within the range the runs measured, where the predictors were checked).

    Pools: pool_column, seen_column, unique_column : each run's pool, samples (or tokens) seen and
    unique samples in its pool (or unique_tokens: {pool: unique samples}); pools : the pools ranked
    by quality, best first (default: the table's order); the candidates of the plan are the nested
    prefixes top-1, top-1..2, ... combined by the QQT rule; total : the whole dataset's size, for
    keep-fractions (default: the pools' sum); tokens : samples seen of the planned training;
    budgets : samples seen of the frontier (default: tokens x 1/8 .. 8); shared : ``a`` and ``d`` of
    the ``qqt_reference`` candidate (the reference code's form, a and d held fixed; default the
    published T-MARS values a = 0.025, d = 0.1).

    Scaling: size_column, seen_column, unique_column : parameters N, tokens seen D and unique tokens U
    of each run; flops : the planned compute C (N and D chosen with C = 6 N D), or size and tokens :
    the planned N and D; unique_tokens : unique tokens owned (epochs = D / unique_tokens); budgets :
    compute of the frontier (default: flops x 1/8 .. 8); base : Chinchilla parameters E, A, B,
    alpha, beta held fixed (data_constrained fits only R_D*, R_N*, the published two-stage fit;
    chinchilla is that base as it is).
    """

    kind: Literal["mixtures", "pools", "scaling"] = "mixtures"
    table: str
    weights: list[str] | None = Field(default=None, min_length=1)
    weight_prefix: str | None = Field(default=None, min_length=1)
    metric: str | list[str] | dict[str, float]
    greater_is_better: bool = False
    size_column: str | None = None
    seed_column: str | None = None
    pool_column: str | None = None
    seen_column: str | None = None
    unique_column: str | None = None
    fit_size: float | None = Field(default=None, gt=0)
    law: Literal[RUNS_LAWS] = "auto"  # type: ignore[valid-type]
    select: Literal["kfold", "scale"] = "kfold"
    folds: int = Field(default=5, ge=2, le=50)
    sum_tolerance: float = Field(default=1e-3, gt=0, le=0.1)
    tokens: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    unique_tokens: float | dict[str, float] = Field(default_factory=dict)
    pools: list[str] | None = Field(default=None, min_length=1)
    total: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    budgets: list[float] = Field(default_factory=list)
    flops: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    size: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    shared: dict[str, float] = Field(default_factory=lambda: {"a": 0.025, "d": 0.1})
    base: dict[str, float] | None = None
    min_ratio: float | dict[str, float] = 0.0
    max_ratio: float | dict[str, float] | None = None
    max_epochs: float | None = Field(default=None, gt=0, le=MAX_PASSES)
    n_samples: int = Field(default=100_000, ge=100, le=10_000_000)
    average_top: int = Field(default=1, ge=1, le=10_000)
    extrapolate: bool = False
    level: float = Field(default=0.9, gt=0, lt=1)

    @model_validator(mode="after")
    def _consistent(self):
        kind = self.kind
        for key in self.model_fields_set:
            kinds = _RUNS_SHARED_KEYS.get(key) or next((k for k, keys in _RUNS_KIND_KEYS.items() if key in keys), None)
            if kinds is not None and kind not in (kinds if isinstance(kinds, tuple) else (kinds,)):
                raise ValueError(f"{key} does not apply to kind: {kind} (it is read for kind "
                                 f"{' or '.join(kinds) if isinstance(kinds, tuple) else kinds})")
        if self.law != "auto" and self.law not in RUNS_KIND_LAWS[kind]:
            raise ValueError(f"law: {self.law} is not a predictor of kind: {kind}; choose auto or one of "
                             f"{', '.join(RUNS_KIND_LAWS[kind])}")
        metric = self.metric
        if isinstance(metric, list) and not metric or isinstance(metric, dict) and not metric:
            raise ValueError("metric: name at least one metric column")
        if isinstance(metric, dict):
            bad = {k: w for k, w in metric.items() if not (math.isfinite(w) and w > 0)}
            if bad:
                raise ValueError(f"metric: weights must be finite and > 0, got {bad}")
        unique = self.unique_tokens if isinstance(self.unique_tokens, dict) else {"unique_tokens": self.unique_tokens}
        bad = {k: u for k, u in unique.items() if not (math.isfinite(u) and u >= 1)}
        if bad:
            raise ValueError(f"unique_tokens must be finite and >= 1, got {bad}")
        bad = [b for b in self.budgets if not (math.isfinite(b) and b > 0)]
        if bad:
            raise ValueError(f"budgets must be finite and > 0, got {bad}")
        return {"mixtures": self._mixtures, "pools": self._pools, "scaling": self._scaling}[kind]()

    def _mixtures(self):
        if (self.weights is None) == (self.weight_prefix is None):
            raise ValueError("give exactly one of 'weights' (the mixture-weight columns) or 'weight_prefix'")
        if not isinstance(self.unique_tokens, dict):
            raise ValueError("unique_tokens: kind mixtures takes {source: unique tokens}")
        if self.max_epochs is not None and (self.tokens is None or not self.unique_tokens):
            raise ValueError("max_epochs needs 'tokens' (the planned training) and 'unique_tokens' (per source)")
        return self

    def _laws_common(self, needed: dict):
        missing = [k for k, v in needed.items() if v is None]
        if missing:
            raise ValueError(f"kind: {self.kind} needs {', '.join(missing)} (the table's column names)")
        if self.greater_is_better:
            raise ValueError(f"greater_is_better: true: kind {self.kind} fits a law of an error or loss (lower is "
                             "better); give that column (e.g. 1 - accuracy)")

    def _pools(self):
        self._laws_common({"pool_column": self.pool_column, "seen_column": self.seen_column})
        if not isinstance(self.unique_tokens, dict):
            raise ValueError("unique_tokens: kind pools takes {pool: unique samples}")
        if (self.unique_column is None) == (not self.unique_tokens):
            raise ValueError("kind: pools needs exactly one of unique_column (each run's pool size) or "
                             "unique_tokens ({pool: unique samples})")
        if self.tokens is None:
            raise ValueError("kind: pools needs tokens (samples seen of the planned training)")
        if set(self.shared) - {"a", "d"} or any(not (math.isfinite(v) and v > 0) for v in self.shared.values()):
            raise ValueError(f"shared: give a and/or d, finite and > 0; got {self.shared}")
        return self

    def _scaling(self):
        self._laws_common({"size_column": self.size_column, "seen_column": self.seen_column,
                           "unique_column": self.unique_column})
        if isinstance(self.unique_tokens, dict):
            raise ValueError("kind: scaling needs unique_tokens, the unique tokens owned (one number)")
        if (self.flops is None) == (self.size is None or self.tokens is None):
            raise ValueError("kind: scaling needs flops (the compute budget) or size and tokens (N and D), "
                             "not both")
        keys = ("E", "A", "B", "alpha", "beta")
        if self.base is not None and (set(self.base) != set(keys) or
                                      any(not (math.isfinite(v) and v > 0) for v in self.base.values())):
            raise ValueError(f"base: give exactly {', '.join(keys)}, finite and > 0; got {self.base}")
        return self


SCORE_METHODS = ("auto", "el2n", "importance", "prototype", "column", "random")


class QualityConfig(_Strict):
    """How sample quality is scored (higher = better).

    method : ``auto`` (``importance`` for the language-model proxy, else ``el2n``) | ``el2n``
    (labelled data) | ``importance`` (text: per-byte loss under a small LM trained on the pool minus
    under one trained on the target, CCNet / Moore-Lewis / DSIR style; no labels) | ``prototype``
    | ``column`` | ``random``; column : the data column holding precomputed quality scores
    (``method: column``); epochs : proxy epochs for EL2N; seeds : EL2N runs averaged; n_clusters :
    prototypes (default ~ sqrt(n)).
    """

    method: Literal[SCORE_METHODS] = "auto"  # type: ignore[valid-type]
    column: str | None = None
    epochs: int = Field(default=10, ge=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    n_clusters: int | None = Field(default=None, ge=1)


class CurateConfig(_Strict):
    """The ``curate:`` section of a run config.

    tokens : compute budget in units seen — samples, or tokens of the trainer's tokenizer (bytes by
    default) for the language-model proxy (default: the sources' total, one pass over everything);
    budget, prices : money budget and per-sample prices (default: the sources' own prices, used
    only with a budget); sources : names to curate (default all); min_ratio, max_ratio, max_epochs :
    constraints (max_epochs, the epochs of any source's kept data, defaults at every budget to the
    most passes the pool runs measure, max(passes), where the repetition law is checked — raised
    where the budget needs more passes over all the data); filter : optimise keep-fractions of all sources (true), none (false) or those named;
    score : :class:`QualityConfig`; buckets : quality levels per source; pools : ``nested`` (measure
    the top 1/buckets, 2/buckets, ... of every source) or ``buckets`` (measure each disjoint quality
    bucket, combined by the QQT mixture rule); passes : sizes of the pool runs as multiples of the
    pool's size; seeds : training seeds per run; trainer : proxy options
    (:func:`~datamix.proxy.make_trainer`; default: ``{model: lm}``, a byte-level causal LM, for text
    sources, else ``{model: mlp, compute_bound: true, batch_size: 32}``); dedup : remove exact and
    near-duplicate documents across sources before pools are formed (default: on for text);
    dedup_eps : SemDeDup threshold (cosine similarity above 1 - eps); n_starts : optimizer starts; frontier : compute
    budgets of the threshold curve, as multiples of ``tokens``; interactions : also train the proxy,
    unfiltered, on every 50/50 pair of sources and the uniform mixture at the budget (``seeds``) and
    fit the pairwise interaction term of the mixture rule on them (false: the QQT mixture rule
    alone); level : coverage of intervals;
    n_bootstrap : law refits behind the intervals; floor_cap : the law's shared error floor ``d`` is
    kept below this share of the smallest measured error (None: free) — on the digits runs a free
    floor sat at the best single pool's error, so every mixture was predicted the same; verify,
    verify_seeds : train on the plan and the baselines; verify_frontier : also train the frontier's
    decision at its smallest budget against keeping everything and at its largest against keeping only
    the best pool (``frontier_check`` in metrics.json); format, shard_size : curated shards.
    """

    tokens: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    budget: float | None = Field(default=None, ge=0)
    prices: dict[str, float] = Field(default_factory=dict)
    sources: list[str] | None = None
    min_ratio: float | dict[str, float] = 0.0
    max_ratio: float | dict[str, float] | None = None
    max_epochs: float | None = Field(default=None, gt=0)
    filter: bool | list[str] = True
    score: QualityConfig = Field(default_factory=QualityConfig)
    buckets: int = Field(default=4, ge=1, le=20)
    pools: Literal["nested", "buckets"] = "nested"
    passes: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0], min_length=2)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1], min_length=1)
    trainer: dict | None = None
    dedup: bool | None = None
    dedup_eps: float = Field(default=0.05, gt=0, lt=2)
    n_starts: int = Field(default=8, ge=1)
    frontier: list[float] = Field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0], min_length=1)
    level: float = Field(default=0.9, gt=0, lt=1)
    interactions: bool = True
    n_bootstrap: int = Field(default=20, ge=2)
    floor_cap: float | None = Field(default=0.5, ge=0)
    verify: bool = True
    verify_seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    verify_frontier: bool = True
    format: Literal["parquet", "jsonl"] = "parquet"
    shard_size: int = Field(default=100_000, ge=1)

    @field_validator("passes", "frontier")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not (math.isfinite(x) and 0 < x <= MAX_PASSES) for x in v):
            raise ValueError(f"must be positive numbers up to {MAX_PASSES:g} (passes over the data), got {v}")
        return sorted(set(v))


class StageResources(_Strict):
    """Resources of each Ray actor (each task for ``measure``) of one stage.

    num_cpus : CPUs per actor (default 1); num_gpus : GPUs per actor (default: 1 for ``embed``, and
    for ``measure`` when the proxy trainer's device is not ``cpu``, when the Ray cluster has GPUs,
    else 0); concurrency : actors in the pool, or trainings in flight (default: as many as the
    cluster's CPUs, or GPUs, allow; never more than the stage has shards or runs).
    """

    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1)


class StageResourcesConfig(_Strict):
    """``engine.resources``: one :class:`StageResources` per per-sample stage, and for ``measure``
    (curate's proxy trainings, one Ray task each)."""

    embed: StageResources = Field(default_factory=StageResources)
    score: StageResources = Field(default_factory=StageResources)
    apply: StageResources = Field(default_factory=StageResources)
    measure: StageResources = Field(default_factory=StageResources)


class EngineConfig(_Strict):
    """Where the per-sample stages (embed, score, apply) and curate's proxy trainings (measure) run:
    ``local`` (in this process, the default) or ``ray`` (Ray Data actors, and a Ray task per
    training; ``pip install 'datamix[ray]'``).

    Written ``engine: ray`` (short form) or as a mapping::

        engine:
          name: ray
          address: auto        # join a running cluster; null starts a local Ray instance
          num_cpus: null       # CPUs of that local instance (default: all)
          max_retries: 3       # restarts of a killed actor and retries of its shard
          resources:
            embed: {num_cpus: 1, num_gpus: 1}
            score: {num_cpus: 1, concurrency: 4}
            measure: {num_cpus: 1, num_gpus: 1}

    Both engines give the same embeddings, scores, curated shards and runs tables (see
    :mod:`datamix.engine`).
    """

    name: Literal["local", "ray"] = "local"
    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)
    max_retries: int = Field(default=3, ge=0)
    resources: StageResourcesConfig = Field(default_factory=StageResourcesConfig)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data):
        if isinstance(data, str):  # engine: ray
            return {"name": data}
        return data

    @model_validator(mode="after")
    def _usable(self):
        if self.name == "local" and (self.address is not None or self.num_cpus is not None):
            raise ValueError("'address' and 'num_cpus' apply to engine 'ray' only")
        if self.name == "ray":
            from datamix.engine import require_ray

            try:
                require_ray()
            except ImportError as exc:
                raise ValueError(str(exc)) from None
        return self


class RunConfig(_Strict):
    """A whole run: which pipeline, on which data, with which stage settings."""

    pipeline: Literal[PIPELINES] = "curate"  # type: ignore[valid-type]
    name: str = "run"
    seed: Seed = 0
    engine: EngineConfig = Field(default_factory=EngineConfig)
    data: DataConfig | None = None
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    prune_eval: PruneEvalConfig = Field(default_factory=PruneEvalConfig)
    purchase: PurchaseConfig | None = None
    curate: CurateConfig = Field(default_factory=CurateConfig)
    runs: RunsConfig | None = None
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v, "run name")

    @model_validator(mode="after")
    def _pipeline_section(self):
        if self.pipeline == "purchase" and self.purchase is None:
            raise ValueError("pipeline 'purchase' needs a 'purchase:' section with at least a budget")
        if self.pipeline == "runs" and self.runs is None:
            raise ValueError("pipeline 'runs' needs a 'runs:' section with at least a table and a metric")
        if self.pipeline != "runs" and self.data is None:
            raise ValueError(f"pipeline {self.pipeline!r} needs a 'data:' section (bundled: NAME, or sources)")
        return self

    def resolve(self, path: str | list[str]) -> str | list[str]:
        """Paths of a source relative to the config file's folder."""
        if isinstance(path, list):
            return [self.resolve(p) for p in path]
        p = Path(path).expanduser()
        return str(p if p.is_absolute() else self.base_dir / p)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model reached by following ``loc`` (minus its last item) from ``model``."""
    for key in loc[:-1]:
        if isinstance(key, int) or model is None:
            continue
        field = model.model_fields.get(key)
        ann = field.annotation if field else None
        args = getattr(ann, "__args__", ()) or (ann,)
        model = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            for a in args:  # list[SourceConfig]
                inner = getattr(a, "__args__", ())
                model = next((i for i in inner if isinstance(i, type) and issubclass(i, BaseModel)), model)
    return sorted(k for k, f in (model.model_fields.items() if model else []) if not f.exclude)


def _format_errors(where: str, exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(k) for k in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model or RunConfig, loc)
            lines.append(f"{where}: unknown key {key!r}; allowed keys here: {', '.join(allowed)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
            lines.append(f"{where}: {key}: {msg}{got}")
    return "\n".join(lines)


def parse_config(data: dict, *, where: str = "<config>", base_dir: str | Path = ".") -> RunConfig:
    """Validate a config mapping; ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values at the top level, "
                          f"got {type(data).__name__}")
    try:
        return RunConfig(**data, base_dir=Path(base_dir))
    except ValidationError as exc:
        raise ConfigError(_format_errors(where, exc)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (safe_load keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str):
    """YAML ``text`` through the safe loader (plain data, no tags that build objects), refusing
    duplicate keys; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc})") from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, where=str(path), base_dir=path.parent)
