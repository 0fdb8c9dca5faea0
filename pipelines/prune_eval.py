"""Score pruning metrics: which metric, keeping easy or hard samples, scales best against random.

embed → score (on the union of the sources) → for each metric × direction × kept fraction × seed,
train the proxy on the kept subset of the pooled sources and test it on the target set → tables,
fitted scaling curves, a plot, and the winner per data size.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
import pandas as pd

from datamix import __version__
from datamix.config import RunConfig
from datamix.io import atomic_write
from datamix.prune import best_per_size, evaluate_metrics, fit_scaling, plot_metrics, summarize_metrics
from datamix.proxy import train_proxy
from datamix.run import RunDir, embed_stage, load_embeddings, load_sources, one_writer, score_stage

logger = logging.getLogger(__name__)


def _write_csv(run_dir: RunDir, name: str, table: pd.DataFrame) -> None:
    atomic_write(run_dir.path("prune_eval", name), lambda fh: fh.write(table.to_csv(index=False).encode()))


def check(cfg: RunConfig, sources, target) -> None:
    """Every check :func:`run` makes before it writes (for ``datamix info CONFIG``)."""
    if target is None:
        raise ValueError("the prune_eval pipeline needs a target set: give data.target (or a bundled scenario)")
    unlabelled = [s.name for s in sources + [target] if s.labels is None]
    if unlabelled:
        raise ValueError(f"the prune_eval pipeline trains a classifier: sources {unlabelled} need a label field")


@one_writer
def run(cfg: RunConfig, run_dir: RunDir, *, progress: bool = True) -> dict:
    """Run the prune_eval pipeline in ``run_dir``; return the metrics written to ``metrics.json``."""
    sources, target = load_sources(cfg, run_dir)
    check(cfg, sources, target)
    run_dir.save_config(cfg)  # nothing was written before this point
    t0 = time.perf_counter()
    embedded = embed_stage(cfg, run_dir, sources + [target], progress=progress)
    score_summary = score_stage(cfg, run_dir, sources)
    emb = load_embeddings(run_dir, sources + [target])
    X = np.concatenate([emb[s.name] for s in sources])
    y = np.concatenate([s.labels for s in sources])
    scores = pd.concat([pd.read_parquet(run_dir.path("scores", f"{s.name}.parquet")) for s in sources])
    metrics = {m: scores[m].to_numpy() for m in cfg.score.metrics}
    pe = cfg.prune_eval
    trainer = functools.partial(_train, model=pe.model, epochs=pe.epochs)
    table = evaluate_metrics(metrics, (X, y), (emb[target.name], target.labels), pe.fractions, trainer=trainer,
                             seeds=pe.seeds, keeps=pe.keeps, balance=pe.balance, progress=progress)
    summary, best, scaling = summarize_metrics(table), best_per_size(table), fit_scaling(table)
    for name, t in (("table.csv", table), ("summary.csv", summary), ("best_per_size.csv", best),
                    ("scaling.csv", scaling)):
        _write_csv(run_dir, name, t)
    fig = plot_metrics(table)
    atomic_write(run_dir.path("prune_eval", "metrics.png"), lambda fh: fig.savefig(fh, format="png", dpi=120))
    result = {
        "datamix_version": __version__,
        "pipeline": "prune_eval",
        "embed": embedded,
        "score": score_summary,
        "trainings": int(len(table)),
        "best_per_size": best.to_dict(orient="records"),
        "scaling": scaling.to_dict(orient="records"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    run_dir.save_metrics(result)
    return result


def _train(X_train, y_train, X_test, y_test, *, seed, model, epochs):
    return train_proxy(X_train, y_train, X_test, y_test, model=model, epochs=epochs, min_steps=300, seed=seed)
