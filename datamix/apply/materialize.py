"""Apply a Plan: select ids per source by quality and write the curated data with a manifest.

For each source with a positive ratio, the samples are ranked by quality score (higher = better;
ties broken by row order), the top ``keep_fraction`` survive, and the plan's epochs say how often
each is repeated: every kept sample ⌊epochs⌋ times, plus once more for a fixed, seeded share of
them so that the total is ``round(epochs · kept)``. Shards are written with HF ``datasets`` (parquet
or jsonl), each atomically, and the manifest last: a reader trusts only what the manifest lists, and a
rerun after a kill rewrites everything with the same result. :func:`manifest_intact` tells whether a
folder still holds a manifest's outputs unchanged (the curate pipeline then skips the rewrite).

The selection is global and runs on the driver; writing the shards is the step :class:`WriteShards`,
which an execution engine (:mod:`datamix.engine`) runs in this process or on Ray actors, one shard
per call, with the same files either way.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datamix.data.sources import Source, check_name
from datamix.data.store import file_sha256
from datamix.io import atomic_write, write_json

if TYPE_CHECKING:  # not at run time: a Ray worker writing shards need not import torch
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
                name: str = "", sizes: np.ndarray | None = None) -> Selection:
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
    sizes : ndarray of shape (n_samples,), optional
        Units of every row (e.g. tokens of a document): the keep-fraction is then a share of the
        units (the best rows until their units reach it), not of the rows, and the units seen stay
        ``epochs * keep_fraction * sizes.sum()`` however whole rows round that share (the passes
        over the kept rows shrink accordingly).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError(f"scores of source {name!r} must be a 1-D array of finite numbers")
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction={keep_fraction!r} for source {name!r} must be in (0, 1]")
    if not epochs >= 0:
        raise ValueError(f"epochs={epochs!r} for source {name!r} must be >= 0")
    order = np.lexsort((np.arange(len(scores)), -scores))  # best first, stable
    if sizes is None:
        n_keep = max(1, int(round(keep_fraction * len(scores))))
    else:
        sizes = np.asarray(sizes, dtype=np.float64)
        if sizes.shape != scores.shape or not (sizes > 0).all():
            raise ValueError(f"sizes of source {name!r} must be positive, one per row ({scores.size})")
        cum = np.cumsum(sizes[order])
        n_keep = int(min(len(scores), np.searchsorted(cum, keep_fraction * cum[-1] * (1 - 1e-9)) + 1))
        epochs = epochs * keep_fraction * cum[-1] / cum[n_keep - 1]
    rows = np.sort(order[:n_keep])
    total = int(round(epochs * n_keep))
    repeats = np.full(n_keep, total // n_keep, dtype=np.int64)
    extra = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(n_keep)[: total % n_keep]
    repeats[extra] += 1
    keep = repeats > 0
    return Selection(rows[keep], repeats[keep], float(scores[order[n_keep - 1]]))


def apply_plan(plan: Plan, sources: list[Source], scores: dict, out_dir: str | os.PathLike, *,
               seed: int = 0, format: str = "parquet", shard_size: int = 100_000, engine=None,
               sizes: dict | None = None) -> dict:
    """Write the curated dataset that ``plan`` describes; return the manifest.

    Parameters
    ----------
    plan : Plan
        Uses ``ratios`` (sources with ratio 0 are skipped), ``keep_fractions`` (default 1) and
        ``epochs`` (derived from the ratios when absent); checked first
        (:func:`datamix.optimize.plan.check_plan`: ratios, fractions and epochs in range and
        consistent with each other and the sources' sizes).
    sources : list of Source
        Must include every source with a positive ratio.
    scores : dict of str to ndarray of shape (n_samples,)
        Quality score per row of each filtered source (higher = better); a source without scores
        may only have keep_fraction 1.
    out_dir : path-like
        Folder for ``<source>/shard-*.parquet`` (or ``.jsonl``) and ``manifest.json``; it must be
        reachable from every worker of the engine.
    seed : int
    format : {"parquet", "jsonl"}
    shard_size : int
        Rows per shard.
    engine : None, str or engine, optional
        Where the shards are written (see :func:`datamix.engine.get_engine`); default local. The
        selection itself runs here, on all scores at once.
    sizes : dict of str to ndarray of shape (n_samples,), optional
        Units (e.g. tokens) of every row of a source: its keep-fraction is then a share of units
        (:func:`select_rows`).

    Returns
    -------
    dict
        The manifest: per source the shards (file, rows, sha256), samples kept, samples with
        repeats, and the score threshold; totals. Shards an earlier plan left in ``out_dir`` that
        the manifest does not list are removed.
    """
    from datamix.engine import get_engine
    from datamix.optimize.plan import check_plan

    if format not in FORMATS:
        raise ValueError(f"format={format!r}; choose one of {FORMATS}")
    if int(shard_size) != shard_size or shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r} must be a positive integer")
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
    plan = check_plan(plan, {s.name: float(np.sum((sizes or {}).get(s.name, np.ones(len(s))))) for s in sources})
    engine = get_engine(engine)
    out = Path(out_dir)
    selections = {n: select_rows(scores.get(n, np.zeros(len(by_name[n]))), plan.keep_fractions.get(n, 1.0),
                                 plan.epochs[n], seed=seed, name=n, sizes=(sizes or {}).get(n))
                  for n in used}
    tasks = [{"source": n, "shard": k, "start": start, "stop": min(start + shard_size, len(selections[n].rows))}
             for n in used for k, start in enumerate(range(0, len(selections[n].rows), shard_size))]
    fn_kwargs = {"sources": {n: by_name[n] for n in used}, "selections": selections, "out_dir": str(out),
                 "format": format}
    written = {(r["source"], int(r["shard"])): {"file": r["file"], "rows": int(r["rows"]), "sha256": r["sha256"]}
               for r in engine.map_shards(WriteShards, tasks, fn_kwargs=fn_kwargs, stage="apply")}
    manifest = {"format": format, "sources": {}, "total_samples": 0, "total_unique": 0}
    for n in used:
        sel = selections[n]
        shards = [written[(t["source"], t["shard"])] for t in tasks if t["source"] == n]
        manifest["sources"][n] = {"shards": shards, "unique": int(len(sel.rows)),
                                  "samples": int(sel.repeats.sum()),
                                  "threshold": sel.threshold if n in scores else None}
        manifest["total_samples"] += int(sel.repeats.sum())
        manifest["total_unique"] += int(len(sel.rows))
    write_json(out / "manifest.json", manifest)
    _remove_unlisted(out, manifest)
    logger.info("curated %d samples (%d unique) from %d sources into %s on %s", manifest["total_samples"],
                manifest["total_unique"], len(used), out, engine.name)
    return manifest


def _remove_unlisted(out: Path, manifest: dict) -> None:
    """Delete the shards under ``out`` that ``manifest`` does not list (left by an earlier plan)."""
    listed = {shard["file"] for source in manifest["sources"].values() for shard in source["shards"]}
    stale = [f for fmt in FORMATS for f in out.glob(f"*/shard-*.{fmt}") if f.relative_to(out).as_posix() not in listed]
    for f in stale:
        f.unlink()
    for folder in {f.parent for f in stale}:
        if not any(folder.iterdir()):
            folder.rmdir()
    if stale:
        logger.info("removed %d curated shard(s) of an earlier plan from %s", len(stale), out)


def manifest_intact(out_dir: str | os.PathLike, manifest: dict) -> bool:
    """Whether ``out_dir`` holds exactly ``manifest``: its ``manifest.json`` and every shard it lists,
    each with the listed sha256 (a cache of :func:`apply_plan` is reused only then)."""
    out = Path(out_dir)
    try:
        on_disk = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if on_disk != manifest:
        return False
    return all((out / shard["file"]).is_file() and file_sha256(out / shard["file"]) == shard["sha256"]
               for source in manifest["sources"].values() for shard in source["shards"])


class WriteShards:
    """Shard step of the apply stage: write one curated shard of one source, atomically.

    Parameters
    ----------
    sources : dict of str to Source
    selections : dict of str to Selection
        The rows kept from each source and their repetitions (chosen on the driver).
    out_dir : path-like
    format : {"parquet", "jsonl"}

    Each call takes tasks ``{"source", "shard", "start", "stop"}`` (``start:stop`` indexes the
    source's selection) and returns ``source, shard, file, rows, sha256`` per task.
    """

    def __init__(self, sources: dict, selections: dict, out_dir: str | os.PathLike, format: str):
        self.sources, self.selections = sources, selections
        self.out, self.format = Path(out_dir), format

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self.one(str(n), int(k), int(a), int(b))
                for n, k, a, b in zip(batch["source"], batch["shard"], batch["start"], batch["stop"])]
        return {key: np.asarray([r[key] for r in rows]) for key in rows[0]}

    def one(self, name: str, k: int, start: int, stop: int) -> dict:
        src, sel = self.sources[name], self.selections[name]
        rows, reps = sel.rows[start:stop], sel.repeats[start:stop]
        part = src.dataset.select(rows)
        part = part.add_column("datamix_id", src.ids_of(rows).tolist())
        part = part.add_column("datamix_source", [src.name] * len(rows))
        part = part.add_column("datamix_repeats", reps.tolist())
        folder = self.out / check_name(name)
        fname = f"shard-{k:05d}.{self.format}"
        if self.format == "parquet":
            atomic_write(folder / fname, lambda fh: part.to_parquet(fh))
        else:
            atomic_write(folder / fname, lambda fh: part.to_json(fh, lines=True))
        return {"source": name, "shard": k, "file": f"{name}/{fname}", "rows": int(len(rows)),
                "sha256": file_sha256(folder / fname)}
