"""Deduplication across sources before pools are formed: exact copies, then semantic near-copies.

Exact duplicates are documents equal after whitespace normalisation (the first occurrence, in
source order, survives); near-duplicates are removed among the survivors by SemDeDup on their
embeddings (:func:`datamix.prune.semdedup`), across all sources at once, so a document copied from
one source into another is kept once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["DedupResult", "exact_duplicates", "dedup_sources"]


def exact_duplicates(texts: Sequence[str]) -> np.ndarray:
    """Keep-mask, shape (n,): False for a text equal (whitespace-normalised) to an earlier one.

    Examples
    --------
    >>> exact_duplicates(["a b", "a  b", "c", "a b\\n"]).tolist()
    [True, False, True, False]
    """
    seen: set[bytes] = set()
    keep = np.ones(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        key = hashlib.blake2b(" ".join(str(t).split()).encode("utf-8"), digest_size=16).digest()
        if key in seen:
            keep[i] = False
        seen.add(key)
    return keep


@dataclass(frozen=True)
class DedupResult:
    """Rows kept per source and what was removed.

    Attributes
    ----------
    keep : dict of str to ndarray of bool
        Keep-mask of every source, shape (n_rows,).
    exact : dict of str to int
        Exact duplicates removed per source.
    near : dict of str to int
        Near-duplicates (SemDeDup) removed per source.
    """

    keep: dict
    exact: dict
    near: dict

    def summary(self) -> dict:
        """Per source: rows, kept, exact and near duplicates removed (JSON-ready)."""
        return {n: {"rows": int(m.size), "kept": int(m.sum()), "exact_removed": int(self.exact[n]),
                    "near_removed": int(self.near[n])} for n, m in self.keep.items()}


def dedup_sources(texts: Mapping[str, Sequence[str]], embeddings: Mapping[str, np.ndarray] | None = None, *,
                  eps: float | None = 0.05, n_clusters: int | None = None, seed: int = 0) -> DedupResult:
    """Remove exact, then near-duplicates across sources.

    Parameters
    ----------
    texts : dict of str to sequence of str
        Documents of every source, in source order (earlier sources win ties).
    embeddings : dict of str to ndarray of shape (n_rows, d), optional
        Embeddings of the same rows; needed for near-duplicates.
    eps : float or None, default=0.05
        SemDeDup threshold: pairs with cosine similarity above ``1 - eps`` are near-duplicates;
        None skips near-duplicates.
    n_clusters : int, optional
        SemDeDup clusters (default ~ sqrt of the surviving documents).
    seed : int

    Returns
    -------
    DedupResult
    """
    names = list(texts)
    sizes = [len(texts[n]) for n in names]
    keep = exact_duplicates([t for n in names for t in texts[n]])
    exact_keep = keep.copy()
    if eps is not None:
        if embeddings is None:
            raise ValueError("near-duplicate removal needs the sources' embeddings (or eps=None)")
        for n, size in zip(names, sizes):
            if len(embeddings[n]) != size:
                raise ValueError(f"embeddings of source {n!r} have {len(embeddings[n])} rows, its texts {size}")
        from datamix.prune.semdedup import semdedup

        emb = np.concatenate([np.asarray(embeddings[n], dtype=np.float32) for n in names])
        alive = np.flatnonzero(keep)
        if alive.size > 1:
            k = n_clusters or max(1, int(round(np.sqrt(alive.size))))
            keep[alive] = semdedup(emb[alive], eps, n_clusters=min(k, alive.size), seed=seed, device="cpu",
                                   progress=False)
    bounds = np.cumsum([0] + sizes)
    out_keep, exact, near = {}, {}, {}
    for n, a, b in zip(names, bounds[:-1], bounds[1:]):
        out_keep[n] = keep[a:b].copy()
        exact[n] = int((~exact_keep[a:b]).sum())
        near[n] = int((exact_keep[a:b] & ~keep[a:b]).sum())
    return DedupResult(out_keep, exact, near)
