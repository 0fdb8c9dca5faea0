"""Apply a Plan: select ids per source by quality and write the curated data with a manifest.

For each source with a positive ratio, the samples are ranked by quality score (higher = better;
ties broken by row order), the top ``keep_fraction`` survive, and the plan's epochs say how often
each is repeated: every kept sample ⌊epochs⌋ times, plus once more for a fixed, seeded share of
them so that the total is ``round(epochs · kept)``. Shards are written with HF ``datasets`` (parquet
or jsonl), each atomically, and the manifest last: a reader trusts only what the manifest lists, and a
rerun after a kill rewrites everything with the same result.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamix.data.sources import Source, check_name
from datamix.data.store import file_sha256
from datamix.io import atomic_write, write_json
from datamix.optimize.plan import Plan

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class Selection:
    """Rows chosen from one source: ``rows[i]`` is used ``repeats[i]`` times; ``threshold`` is the
    lowest kept score (the score cut-off that keeps the plan's share)."""

    rows: np.ndarray
    repeats: np.ndarray
    threshold: float


def select_rows(scores: np.ndarray, keep_fraction: float, epochs: float, *, seed: int = 0,
                name: str = "") -> Selection:
    """Rows kept from one source and their repetition counts.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Quality score per row, higher = better.
    keep_fraction : float in (0, 1]
    epochs : float >= 0
        Passes over the kept rows.
    seed : int
        Chooses which kept rows get the extra repetition when ``epochs`` is fractional.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError(f"scores of source {name!r} must be a 1-D array of finite numbers")
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction={keep_fraction!r} for source {name!r} must be in (0, 1]")
    if not epochs >= 0:
        raise ValueError(f"epochs={epochs!r} for source {name!r} must be >= 0")
    n_keep = max(1, int(round(keep_fraction * len(scores))))
    order = np.lexsort((np.arange(len(scores)), -scores))  # best first, stable
    rows = np.sort(order[:n_keep])
    total = int(round(epochs * n_keep))
    repeats = np.full(n_keep, total // n_keep, dtype=np.int64)
    extra = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(n_keep)[: total % n_keep]
    repeats[extra] += 1
    keep = repeats > 0
    return Selection(rows[keep], repeats[keep], float(scores[order[n_keep - 1]]))


def apply_plan(plan: Plan, sources: list[Source], scores: dict, out_dir: str | os.PathLike, *,
               seed: int = 0, format: str = "parquet", shard_size: int = 100_000) -> dict:
    """Write the curated dataset that ``plan`` describes; return the manifest.

    Parameters
    ----------
    plan : Plan
        Uses ``ratios`` (sources with ratio 0 are skipped), ``keep_fractions`` (default 1) and
        ``epochs`` (default 1).
    sources : list of Source
        Must include every source with a positive ratio.
    scores : dict of str to ndarray of shape (n_samples,)
        Quality score per row of each filtered source (higher = better); a source without scores
        may only have keep_fraction 1.
    out_dir : path-like
        Folder for ``<source>/shard-*.parquet`` (or ``.jsonl``) and ``manifest.json``.
    seed : int
    format : {"parquet", "jsonl"}
    shard_size : int
        Rows per shard.

    Returns
    -------
    dict
        The manifest: per source the shards (file, rows, sha256), samples kept, samples with
        repeats, and the score threshold; totals.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r}; choose one of {FORMATS}")
    by_name = {s.name: s for s in sources}
    used = [n for n, r in plan.ratios.items() if r > 0]
    missing = [n for n in used if n not in by_name]
    if missing:
        raise ValueError(f"the plan uses sources {missing} that were not given; given: {sorted(by_name)}")
    for n in used:
        q = plan.keep_fractions.get(n, 1.0)
        if n not in scores and q < 1:
            raise ValueError(f"source {n!r} is filtered (keep_fraction {q}) but has no scores")
        if n in scores and len(scores[n]) != len(by_name[n]):
            raise ValueError(f"scores of source {n!r} have {len(scores[n])} values for {len(by_name[n])} rows")
    out = Path(out_dir)
    manifest = {"format": format, "sources": {}, "total_samples": 0, "total_unique": 0}
    for n in used:
        src = by_name[n]
        sel = select_rows(scores.get(n, np.zeros(len(src))), plan.keep_fractions.get(n, 1.0),
                          plan.epochs.get(n, 1.0), seed=seed, name=n)
        shards = _write_source(src, sel, out / check_name(n), format, shard_size)
        manifest["sources"][n] = {"shards": shards, "unique": int(len(sel.rows)),
                                  "samples": int(sel.repeats.sum()),
                                  "threshold": sel.threshold if n in scores else None}
        manifest["total_samples"] += int(sel.repeats.sum())
        manifest["total_unique"] += int(len(sel.rows))
    write_json(out / "manifest.json", manifest)
    logger.info("curated %d samples (%d unique) from %d sources into %s", manifest["total_samples"],
                manifest["total_unique"], len(used), out)
    return manifest


def _write_source(src: Source, sel: Selection, folder: Path, format: str, shard_size: int) -> list:
    shards = []
    for k, start in enumerate(range(0, len(sel.rows), shard_size)):
        rows, reps = sel.rows[start:start + shard_size], sel.repeats[start:start + shard_size]
        part = src.dataset.select(rows)
        part = part.add_column("datamix_id", src.ids_of(rows).tolist())
        part = part.add_column("datamix_source", [src.name] * len(rows))
        part = part.add_column("datamix_repeats", reps.tolist())
        name = f"shard-{k:05d}.{format}"
        if format == "parquet":
            atomic_write(folder / name, lambda fh: part.to_parquet(fh))
        else:
            atomic_write(folder / name, lambda fh: part.to_json(fh, lines=True))
        shards.append({"file": f"{src.name}/{name}", "rows": int(len(rows)), "sha256": file_sha256(folder / name)})
    return shards
