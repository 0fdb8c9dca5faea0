"""Curate before pretraining: embed → score → measure → fit → optimize → apply → report.

Only the stages built so far run; the others are listed as not available, and nothing is
faked for them.
"""

from __future__ import annotations

import logging

from datamix import __version__
from datamix.config import RunConfig
from datamix.run import RunDir, embed_stage, load_sources

logger = logging.getLogger(__name__)

STAGES = ("embed", "score", "measure", "fit", "optimize", "apply", "report")
AVAILABLE = ("embed",)


def run(cfg: RunConfig, run_dir: RunDir, *, progress: bool = True) -> dict:
    """Run the curate pipeline in ``run_dir``; return the metrics written to ``metrics.json``."""
    run_dir.save_config(cfg)
    sources, target = load_sources(cfg, run_dir)
    everything = sources + ([target] if target is not None else [])
    metrics = {
        "datamix_version": __version__,
        "pipeline": "curate",
        "sources": {s.name: {"n": len(s), "kind": s.kind, "offer_size": s.total_size, "price": s.price}
                    for s in sources},
        "target": None if target is None else {"name": target.name, "n": len(target)},
        "embed": embed_stage(cfg, run_dir, everything, progress=progress),
        "stages_done": list(AVAILABLE),
        "stages_not_available": [s for s in STAGES if s not in AVAILABLE],
    }
    run_dir.save_metrics(metrics)
    return metrics
