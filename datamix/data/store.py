"""EmbeddingStore: float32 embedding shards plus a JSON manifest, read through memory maps.

Layout of a store folder::

    manifest.json            model, dim, n_total, shard_size, and one record per finished shard
    shard-000000.npy         float32 embeddings of rows [0, shard_size), shape (m, dim)
    shard-000000.ids.npy     their sample ids, str

Shard k always holds rows ``[k * shard_size, (k + 1) * shard_size)`` of its source, so a resumed run
rewrites a missing or damaged shard in place and can never hold a sample twice. Each shard file is
written atomically, then the manifest is rewritten atomically to list it, with the checksums of its
two files and a hash of its input rows; a shard not listed, or whose files do not match its record,
is not done. Reading checks each shard's files against their checksums the first time it is used:
an altered shard or ids file is reported by name (:class:`StoreError`), never returned.

Writing a shard's files (:func:`write_shard`) and listing it (:meth:`StoreWriter.register`) are
separate steps so that an execution engine can run the first in parallel workers while the driver
alone writes the manifest: a worker killed between the two leaves files that no manifest lists,
and the shard is written again, in the same place, by the retry or the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from datamix.io import save_npy, write_json

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def shard_name(k: int) -> str:
    return f"shard-{k:06d}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


class StoreError(ValueError):
    """A store on disk is missing, damaged, or does not match what was asked for."""


@dataclass(frozen=True)
class ShardRecord:
    index: int
    start: int
    stop: int
    sha256: str
    input_hash: str
    ids_sha256: str = ""  # stores written before it was recorded have ""

    @property
    def file(self) -> str:
        return shard_name(self.index) + ".npy"

    @property
    def ids_file(self) -> str:
        return shard_name(self.index) + ".ids.npy"


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: no {MANIFEST}; this is not an embedding store") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path / MANIFEST}: damaged manifest ({exc}); "
                         "rerun the embed stage with the same arguments to rebuild it") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{path / MANIFEST}: format_version {manifest.get('format_version')!r}, "
                         f"this datamix reads {FORMAT_VERSION}")
    return manifest


class EmbeddingStore:
    """Read access to a finished (or, with ``allow_partial``, unfinished) embedding store.

    Attributes
    ----------
    path : Path
    model : str
        Name of the encoder that made the embeddings.
    dim : int
        Embedding dimension.
    n_total : int
        Samples in the source; ``len(store)`` is the number embedded so far.
    complete : bool
        Every shard is written.
    meta : dict
        Free-form description (source name, kind, …).
    """

    def __init__(self, path: str | os.PathLike, *, allow_partial: bool = False):
        self.path = Path(path)
        m = _read_manifest(self.path)
        self.model, self.dim, self.n_total = m["model"], int(m["dim"] or 0), int(m["n_total"])
        self.shard_size, self.meta = int(m["shard_size"]), m.get("meta", {})
        self.shards = sorted((ShardRecord(**r) for r in m["shards"]), key=lambda r: r.index)
        self.complete = sum(r.stop - r.start for r in self.shards) == self.n_total
        if not (self.complete or allow_partial):
            done = sum(r.stop - r.start for r in self.shards)
            raise StoreError(f"{self.path}: incomplete store ({done} of {self.n_total} samples embedded); "
                             "rerun the embed stage with the same arguments to finish it")
        self._maps = [self._open_shard(r) for r in self.shards]
        self._ids = None
        self._checked: set[int] = set()

    @classmethod
    def open(cls, path: str | os.PathLike, *, allow_partial: bool = False) -> "EmbeddingStore":
        """Open the store at ``path`` (same as the constructor)."""
        return cls(path, allow_partial=allow_partial)

    def _check(self, k: int) -> ShardRecord:
        """Shard k's record, after checking its files against their checksums (once per store)."""
        rec = self.shards[k]
        if k not in self._checked:
            _check_files(self.path, rec)
            self._checked.add(k)
        return rec

    def _open_shard(self, rec: ShardRecord) -> np.ndarray:
        f = self.path / rec.file
        try:
            X = np.load(f, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StoreError(f"{f}: shard missing, truncated or corrupt ({exc}); rerun the embed "
                             "stage with the same arguments to repair it") from None
        if X.dtype != np.float32 or X.shape != (rec.stop - rec.start, self.dim):
            raise StoreError(f"{f}: holds {X.dtype} {X.shape}, the manifest says float32 "
                             f"({rec.stop - rec.start}, {self.dim}); rerun the embed stage to repair it")
        return X

    def __len__(self) -> int:
        return sum(r.stop - r.start for r in self.shards)

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.path)!r}, model={self.model!r}, n={len(self)}, dim={self.dim})"

    @property
    def ids(self) -> np.ndarray:
        """Sample ids in row order, shape (n,), dtype str."""
        if self._ids is None:
            parts = [np.load(self.path / self._check(k).ids_file, allow_pickle=False) for k in range(len(self.shards))]
            self._ids = np.concatenate(parts) if parts else np.array([], dtype=str)
        return self._ids

    def shard(self, k: int) -> np.ndarray:
        """The k-th shard as a read-only memory map, shape (m, dim)."""
        self._check(k)
        return self._maps[k]

    def read(self, k: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Rows ``rows`` (default all) of the k-th shard, read into memory through a memory map that
        is closed again: nothing of the file stays mapped, so the resident memory of a process that
        streams a store is what it keeps, not the file. float32 of shape (len(rows), dim)."""
        X = self._open_shard(self._check(k))
        out = np.array(X if rows is None else X[rows], dtype=np.float32)
        del X  # unmap
        return out

    def load(self) -> np.ndarray:
        """All embeddings in row order, in memory, float32 of shape (n, dim)."""
        if not self._maps:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.concatenate([self.shard(k) for k in range(len(self._maps))], axis=0)

    def iter_batches(self, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids, X)`` batches in row order; memory stays at one batch."""
        for k, X in enumerate(self._maps):
            ids = np.load(self.path / self._check(k).ids_file, allow_pickle=False)
            for i in range(0, len(X), batch_size):
                yield ids[i:i + batch_size], np.asarray(X[i:i + batch_size])

    def verify(self) -> None:
        """Check every shard's files against their checksums; raise StoreError naming the first bad one."""
        for k in range(len(self.shards)):
            self._check(k)


def _check_files(path: Path, rec: ShardRecord) -> None:
    """Raise StoreError naming the first of shard ``rec``'s files that does not match its checksum."""
    for name, digest in ((rec.file, rec.sha256), (rec.ids_file, rec.ids_sha256)):
        if not digest:
            continue
        try:
            actual = file_sha256(path / name)
        except OSError as exc:
            raise StoreError(f"{path / name}: cannot be read ({exc}); rerun the embed stage to repair it") from None
        if actual != digest:
            raise StoreError(f"{path / name}: checksum mismatch; the file was changed or damaged after it was "
                             "written; rerun the embed stage to repair it")


class StoreWriter:
    """Writes shards of a store, resuming a compatible store already at ``path``.

    Parameters
    ----------
    path : path-like
    model : str
        Encoder name; a store made by another model is not resumed (StoreError) unless ``overwrite``.
    n_total : int
        Samples in the source.
    shard_size : int
        Rows per shard.
    meta : dict
        Description kept in the manifest.
    overwrite : bool
        Drop whatever is at ``path`` instead of resuming.
    """

    def __init__(self, path, *, model: str, n_total: int, shard_size: int, meta: dict | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        self.model, self.n_total, self.shard_size = model, int(n_total), int(shard_size)
        self.meta = meta or {}
        self.dim = None
        self.records: dict[int, ShardRecord] = {}
        if (self.path / MANIFEST).exists() and not overwrite:
            self._resume()
        elif self.path.exists() and any(self.path.iterdir()) and not overwrite and not (self.path / MANIFEST).exists():
            raise StoreError(f"{self.path}: folder is not empty and holds no {MANIFEST}; "
                             "choose an empty folder for the store")
        if overwrite and self.path.exists():
            for f in self.path.glob("shard-*.npy"):
                f.unlink()
            (self.path / MANIFEST).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        for tmp in self.path.glob(".*.tmp"):  # left by a write that was killed
            tmp.unlink()

    @property
    def n_shards(self) -> int:
        return -(-self.n_total // self.shard_size)

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.shard_size, min((k + 1) * self.shard_size, self.n_total)

    def _resume(self) -> None:
        m = _read_manifest(self.path)
        theirs = (m["model"], int(m["n_total"]), int(m["shard_size"]))
        ours = (self.model, self.n_total, self.shard_size)
        if theirs != ours:
            raise StoreError(
                f"{self.path}: holds a store of (model, n_total, shard_size) = {theirs}, but this run "
                f"asks for {ours}; use another store path, the same arguments, or overwrite=True")
        self.dim = m["dim"]
        for r in m["shards"]:
            rec = ShardRecord(**r)
            problem = self._problem(rec)
            if problem is None:
                self.records[rec.index] = rec
            else:
                logger.warning("%s: shard %d is damaged (%s); it will be recomputed", self.path, rec.index, problem)

    def _problem(self, rec: ShardRecord) -> str | None:
        """Why shard ``rec`` cannot be reused, or None when it is intact."""
        if (rec.start, rec.stop) != self.bounds(rec.index):
            return f"rows {rec.start}:{rec.stop}, expected {self.bounds(rec.index)}"
        missing = [f for f in (rec.file, rec.ids_file) if not (self.path / f).exists()]
        if missing:
            return f"missing {missing}"
        try:
            _check_files(self.path, rec)
        except StoreError as exc:
            return str(exc)
        return None

    def done(self, k: int, input_hash: str) -> bool:
        """Whether shard k is written, intact, and was computed from the same input rows."""
        rec = self.records.get(k)
        return rec is not None and rec.input_hash == input_hash

    def write(self, k: int, ids: np.ndarray, X: np.ndarray, input_hash: str) -> None:
        """Write shard k atomically, then list it in the manifest."""
        start, stop = self.bounds(k)
        self._check_dim(k, np.shape(X)[-1] if np.ndim(X) == 2 else None)
        rec = write_shard(self.path, k, start, stop, ids, X, input_hash)
        self.register(rec, int(np.shape(X)[1]))

    def _check_dim(self, k: int, dim: int | None) -> None:
        if dim is not None and self.dim is not None and dim != self.dim:
            raise ValueError(f"shard {k}: embeddings of dimension {dim}, the store holds {self.dim}")

    def register(self, rec: ShardRecord, dim: int) -> None:
        """List a shard whose files :func:`write_shard` wrote (in this process or a worker) in the
        manifest, after checking its bounds, dimension and files; the manifest is rewritten
        atomically. Only the process that owns this writer calls it (a single manifest writer)."""
        if (rec.start, rec.stop) != self.bounds(rec.index):
            raise ValueError(f"shard {rec.index}: rows {rec.start}:{rec.stop}, this store's shard "
                             f"{rec.index} holds rows {self.bounds(rec.index)}")
        self._check_dim(rec.index, int(dim))
        missing = [f for f in (rec.file, rec.ids_file) if not (self.path / f).exists()]
        if missing:  # the checksum itself was taken by the writer, from the file it had just renamed
            raise StoreError(f"{self.path}: shard {rec.index} was reported written but {missing} are missing; "
                             "is the store folder shared with the workers?")
        if self.dim is None:
            self.dim = int(dim)
        self.records[rec.index] = rec
        self._write_manifest()

    def cleanup(self) -> None:
        """Remove temporary files that killed writers left (call when no worker is writing)."""
        for tmp in self.path.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def _write_manifest(self) -> None:
        write_json(self.path / MANIFEST, {
            "format_version": FORMAT_VERSION, "model": self.model, "dim": self.dim,
            "n_total": self.n_total, "shard_size": self.shard_size, "meta": self.meta,
            "shards": [asdict(self.records[k]) for k in sorted(self.records)],
        })

    def finish(self) -> EmbeddingStore:
        """Check that every shard is written and return the store for reading."""
        return EmbeddingStore(self.path)


def write_shard(path: str | os.PathLike, k: int, start: int, stop: int, ids: np.ndarray, X: np.ndarray,
                input_hash: str) -> ShardRecord:
    """Write the files of shard ``k`` (rows ``start:stop``) of the store at ``path``, each atomically,
    and return its record; the manifest is not touched (see :meth:`StoreWriter.register`).

    Parameters
    ----------
    path : path-like
        Store folder (exists).
    k, start, stop : int
        Shard index and its rows ``[start, stop)``.
    ids : array-like of shape (stop - start,)
        Sample ids of those rows.
    X : array-like of shape (stop - start, dim)
        Their embeddings (stored as float32).
    input_hash : str
        Hash of the shard's input rows (ids and samples).

    Returns
    -------
    ShardRecord
    """
    path = Path(path)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) != stop - start or len(ids) != stop - start:
        raise ValueError(f"shard {k}: got {X.shape} embeddings and {len(ids)} ids for rows {start}:{stop}")
    name = shard_name(k)
    f_ids = save_npy(path / f"{name}.ids.npy", np.asarray(ids, dtype=str))
    f = save_npy(path / f"{name}.npy", X)
    return ShardRecord(int(k), int(start), int(stop), file_sha256(f), str(input_hash), file_sha256(f_ids))
