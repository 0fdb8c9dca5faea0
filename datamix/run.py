"""Run directories and the run-level stages that the CLI and the pipelines share.

A run directory holds ``config.yaml``, one folder per stage output (``embeddings/<source>/``, …) and
``metrics.json``. Every path written is built from validated names below the run directory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from datamix.config import ConfigError, RunConfig
from datamix.data.sources import Source, check_name
from datamix.io import atomic_write, write_json, write_text

logger = logging.getLogger(__name__)


class RunDir:
    """The folder of one run; every output path is made inside it."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        """``root/part/...``, each part a safe name (no separators, no ``..``)."""
        return self.root.joinpath(*(check_name(p, "path part") for p in parts))

    def embeddings(self, source: str) -> Path:
        return self.path("embeddings", source)

    def save_config(self, cfg: RunConfig) -> Path:
        return write_text(self.path("config.yaml"), cfg.to_yaml())

    def save_metrics(self, metrics: dict) -> Path:
        return write_json(self.path("metrics.json"), metrics)


def load_sources(cfg: RunConfig, run: RunDir) -> tuple[list[Source], Source | None]:
    """The candidate sources and the target set (None when the config names none)."""
    data = cfg.data
    if data.bundled is not None:
        from datamix.data.bundled import load_scenario

        try:
            sc = load_scenario(data.bundled, seed=cfg.seed, **data.options)
        except TypeError as exc:
            raise ConfigError(f"data.options {data.options}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"data.bundled / data.options: {exc}") from None
        return sc.sources, sc.target

    def build(sc) -> Source:
        options = dict(field=sc.field, kind=sc.kind, label_field=sc.label, id_field=sc.id, price=sc.price,
                       offer_size=sc.offer_size)
        if sc.hub is not None:
            return Source.from_hub(sc.name, sc.hub, split=sc.split, **options)
        return Source.from_files(sc.name, cfg.resolve(sc.path), format=sc.format,
                                 cache_dir=run.path("cache"), **options)

    return [build(s) for s in data.sources], (build(data.target) if data.target else None)


def embed_stage(cfg: RunConfig, run: RunDir, sources: list[Source], *, progress: bool = True) -> dict:
    """Embed every source into ``run/embeddings/<name>`` (resuming); return a summary per source."""
    from datamix.embed import embed, get_encoder

    summary, encoders = {}, {}
    for s in sources:
        key = (s.kind, cfg.embed.model)
        if key not in encoders:  # load each model once for all sources of its kind
            encoders[key] = get_encoder(cfg.embed.model, kind=s.kind, device=cfg.embed.device,
                                        batch_size=cfg.embed.batch_size,
                                        trust_remote_code=cfg.embed.trust_remote_code)
        t0 = time.perf_counter()
        store = embed(s, encoders[key], store=run.embeddings(s.name), shard_size=cfg.embed.shard_size,
                      progress=progress)
        seconds = time.perf_counter() - t0
        summary[s.name] = {"n": len(store), "dim": store.dim, "model": store.model,
                           "seconds": round(seconds, 3), "samples_per_s": round(len(store) / max(seconds, 1e-9), 1)}
        logger.info("embedded %s: %d x %d with %s in %.1f s", s.name, len(store), store.dim, store.model, seconds)
    return summary


def load_embeddings(run: RunDir, sources: list[Source]) -> dict:
    """The embeddings of each source from the run's stores, float32 of shape (n_i, d)."""
    from datamix.data.store import EmbeddingStore

    out = {}
    for s in sources:
        store = EmbeddingStore(run.embeddings(s.name))
        if len(store) != len(s) or not np.array_equal(store.ids, s.ids):
            raise ValueError(f"embeddings at {run.embeddings(s.name)} do not match source {s.name!r} "
                             "(different ids); rerun the embed stage")
        out[s.name] = store.load()
    return out


def score_stage(cfg: RunConfig, run: RunDir, sources: list[Source]) -> dict:
    """Score every source's samples (on their union) into ``run/scores/<name>.parquet``."""
    from datamix.prune.scoring import score_sources

    sc = cfg.score
    t0 = time.perf_counter()
    tables = score_sources(load_embeddings(run, sources), {s.name: s.labels for s in sources},
                           metrics=sc.metrics, n_clusters=sc.n_clusters, semdedup_eps=sc.semdedup_eps,
                           dynamics_model=sc.dynamics_model, dynamics_epochs=sc.dynamics_epochs,
                           dynamics_seeds=sc.dynamics_seeds, seed=cfg.seed)
    summary = {}
    for s in sources:
        table = tables[s.name]
        table.insert(0, "id", s.ids)
        atomic_write(run.path("scores", f"{s.name}.parquet"), lambda fh, t=table: t.to_parquet(fh, index=False))
        summary[s.name] = {m: round(float(table[m].mean()), 6) for m in table.columns if m != "id"}
    logger.info("scored %d sources in %.1f s", len(sources), time.perf_counter() - t0)
    return summary
