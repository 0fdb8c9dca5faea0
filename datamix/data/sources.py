"""Sources: named pools of samples read through HF ``datasets`` or built from arrays.

A :class:`Source` knows which field holds the sample (text, image or vector), an optional label
field, stable sample ids, an optional price per sample, and whether it is fully available or only a
*revealed* sample of a larger offer. :func:`sample_mixture` draws a mixture of sources at given
ratios and size, deterministically under a seed.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

KINDS = ("text", "image", "vector")
FORMATS = {
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".arrow": "arrow",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: names a source may not take: files beside the per-source folders of a run directory
RESERVED_SOURCE_NAMES = ("manifest.json",)
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def check_name(name: str, what: str = "source name") -> str:
    """Return ``name`` if it is safe as a file-name component on every OS, else raise ValueError.

    Names become folder names in a run directory, so they may hold letters, digits, ``_ . -``
    only, must start with a letter or digit (no path separators, no ``..``), must not end with a
    dot and must not be a device name Windows reserves (``CON``, ``NUL``, ``COM1``, ...).
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if name.endswith("."):
        raise ValueError(f"invalid {what} {name!r}: a name ending with '.' is not kept as given on Windows")
    if name.split(".")[0].upper() in _RESERVED:
        raise ValueError(f"invalid {what} {name!r}: {name.split('.')[0]} is a device name on Windows")
    return name


def check_source_name(name: str) -> str:
    """:func:`check_name`, and not one of :data:`RESERVED_SOURCE_NAMES`; returns ``name``."""
    check_name(name)
    if name.lower() in RESERVED_SOURCE_NAMES:
        raise ValueError(f"source name {name!r} is reserved: the run directory has a file of that name beside "
                         "the sources' folders")
    return name


@dataclass(frozen=True)
class Source:
    """A named pool of samples.

    Parameters
    ----------
    name : str
        Unique name; also the folder name of the source's outputs in a run directory.
    dataset : datasets.Dataset
        The rows.
    field : str
        Column holding the sample: a string (``kind="text"``), an image (``"image"``) or a list of
        floats (``"vector"``).
    kind : {"text", "image", "vector"}
    label_field : str or None
        Column holding the class label, if any.
    id_field : str or None
        Column holding unique sample ids; without it ids are ``"{name}:{row}"``.
    price : float or None
        Price of one sample (purchases), in the user's currency.
    offer_size : int or None
        Full size of the offer when ``dataset`` is only the revealed part; None means the source is
        fully available.
    origin : str
        Where the rows came from (a path, a hub id, "arrays", "bundled:…"), for messages.
    """

    name: str
    dataset: "datasets.Dataset"  # noqa: F821
    field: str
    kind: str = "text"
    label_field: str | None = None
    id_field: str | None = None
    price: float | None = None
    offer_size: int | None = None
    origin: str = "arrays"
    _ids: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_source_name(self.name)
        where = f"source {self.name!r} ({self.origin})"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind={self.kind!r}, expected one of {KINDS}")
        cols = self.dataset.column_names
        for key, col in (("field", self.field), ("label_field", self.label_field), ("id_field", self.id_field)):
            if col is not None and col not in cols:
                raise ValueError(f"{where}: {key} {col!r} is not a column; columns are {cols}")
        if len(self.dataset) == 0:
            raise ValueError(f"{where} is empty: it has no rows")
        if self.price is not None and not (np.isfinite(self.price) and self.price >= 0):
            raise ValueError(f"{where}: price={self.price!r} must be a finite number >= 0")
        if self.offer_size is not None and int(self.offer_size) < len(self.dataset):
            raise ValueError(
                f"{where}: the revealed sample has {len(self.dataset)} rows, more than the "
                f"offer_size={self.offer_size}; offer_size is the full size of the offer"
            )
        self._check_columns(where)
        if self.id_field is not None:
            object.__setattr__(self, "_ids", self._checked_ids())

    def _check_columns(self, where: str) -> None:
        """Refuse missing values in the sample and label columns, and a sample column whose type
        does not fit ``kind`` (numbers as text, text as vectors): read from the Arrow table's schema
        and null counts, not from the rows."""
        import pyarrow as pa

        table = self.dataset.data
        for key, col in (("field", self.field), ("label_field", self.label_field)):
            if col is None:
                continue
            column = table.column(col)
            if column.null_count:
                raise ValueError(f"{where}: {key} {col!r} is missing (null) in {column.null_count} of "
                                 f"{len(column)} rows; fill or drop them")
        typ = table.schema.field(self.field).type
        if self.kind == "text" and not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            raise ValueError(f"{where}: field {self.field!r} holds {typ}, not text; give the column of "
                             "documents, or kind: vector / image")
        if self.kind == "vector":
            inner = typ.value_type if pa.types.is_list(typ) or pa.types.is_large_list(typ) or \
                pa.types.is_fixed_size_list(typ) else None
            if inner is None or not (pa.types.is_integer(inner) or pa.types.is_floating(inner)):
                raise ValueError(f"{where}: field {self.field!r} holds {typ}, not lists of numbers (vectors)")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_files(
        cls,
        name: str,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        field: str,
        kind: str = "text",
        format: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        **options,
    ) -> "Source":
        """Read local json/jsonl/parquet/csv/arrow files (one format) through HF ``datasets``.

        ``format`` is inferred from the file extension when omitted; ``options`` are the other
        :class:`Source` fields (``label_field``, ``id_field``, ``price``, ``offer_size``).
        """
        import datasets

        paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
        if not paths:
            raise ValueError(f"source {name!r}: no files given")
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"source {name!r}: file not found: {p}")
        fmt = format or _infer_format(name, paths)
        if fmt not in set(FORMATS.values()):
            raise ValueError(f"source {name!r}: format={fmt!r}, expected one of {sorted(set(FORMATS.values()))}")
        files = [str(p) for p in paths]
        cache = None if cache_dir is None else str(cache_dir)
        for p in paths:
            _check_file(name, p, fmt)
        quiet = logging.getLogger("datasets.packaged_modules")  # it logs each parse error with a traceback
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            if fmt == "json":
                ds = datasets.Dataset.from_json(files, cache_dir=cache)
            elif fmt == "csv":
                ds = datasets.Dataset.from_csv(files, cache_dir=cache)
            elif fmt == "parquet":
                ds = datasets.Dataset.from_parquet(files, cache_dir=cache)
            else:
                ds = _read_arrow(paths)
        except (ValueError, OSError, TypeError, datasets.exceptions.DatasetGenerationError) as exc:
            cause = exc.__cause__ or exc
            raise ValueError(f"source {name!r}: could not read {fmt} file(s) {files}: {cause}") from exc
        finally:
            quiet.setLevel(level)
        origin = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} files)"
        return cls(name=name, dataset=ds, field=field, kind=kind, origin=origin, **options)

    @classmethod
    def from_hub(cls, name: str, path: str, *, field: str, split: str = "train", kind: str = "text",
                 revision: str | None = None, **options) -> "Source":
        """Load a dataset from the HF hub (or a local dataset folder) with ``datasets.load_dataset``."""
        import datasets

        ds = datasets.load_dataset(path, split=split, revision=revision)
        return cls(name=name, dataset=ds, field=field, kind=kind, origin=f"hub:{path}[{split}]", **options)

    @classmethod
    def from_arrays(cls, name: str, samples, *, labels=None, ids=None, kind: str | None = None,
                    **options) -> "Source":
        """Build a source from a list of texts or an array of vectors, shape (n_samples, n_features)."""
        import datasets

        if kind is None:
            kind = "text" if len(samples) and isinstance(samples[0], str) else "vector"
        data = {"sample": samples if kind != "vector" else np.asarray(samples, dtype=np.float32)}
        if labels is not None:
            if len(labels) != len(samples):
                raise ValueError(f"source {name!r}: {len(labels)} labels for {len(samples)} samples")
            data["label"] = np.asarray(labels)
        if ids is not None:
            if len(ids) != len(samples):
                raise ValueError(f"source {name!r}: {len(ids)} ids for {len(samples)} samples")
            data["id"] = [str(i) for i in ids]
        ds = datasets.Dataset.from_dict(data)
        return cls(name=name, dataset=ds, field="sample", kind=kind,
                   label_field="label" if labels is not None else None,
                   id_field="id" if ids is not None else None, **options)

    # -- access --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def ids(self) -> np.ndarray:
        """Stable sample ids, shape (n_samples,), dtype str."""
        return self.ids_between(0, len(self))

    def ids_between(self, start: int, stop: int) -> np.ndarray:
        """Ids of rows ``start:stop``."""
        return self.ids_of(np.arange(start, min(stop, len(self))))

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """Ids of the given rows; default ids are made on the fly, not held for the whole source."""
        if self._ids is not None:
            return self._ids[rows]
        return np.array([f"{self.name}:{i}" for i in rows], dtype=str)

    @property
    def revealed(self) -> bool:
        """True when only a sample of a larger offer is available."""
        return self.offer_size is not None

    @property
    def total_size(self) -> int:
        """Size of the whole offer (the source itself when fully available)."""
        return int(self.offer_size) if self.revealed else len(self)

    @property
    def labels(self) -> np.ndarray | None:
        """Labels, shape (n_samples,), or None."""
        if self.label_field is None:
            return None
        return np.asarray(self.dataset[self.label_field])

    def samples(self, start: int = 0, stop: int | None = None) -> list:
        """Samples of rows ``start:stop`` (texts, images or vectors as stored)."""
        return self.dataset[start:len(self) if stop is None else stop][self.field]

    def vectors(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of a vector source as float32, shape (n, n_features).

        Raises ValueError naming the first row whose length differs from the first row's or
        that holds NaN/inf.
        """
        if self.kind != "vector":
            raise ValueError(f"source {self.name!r} holds {self.kind} samples, not vectors")
        rows = self.samples(start, stop)
        dims = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        expected = len(self.samples(0, 1)[0])
        bad = np.flatnonzero(dims != expected)
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"source {self.name!r} ({self.origin}): field {self.field!r} row {start + i} has "
                f"{dims[i]} values, expected {expected} like row 0 (mixed vector dimensions)"
            )
        X = np.asarray(rows, dtype=np.float32).reshape(len(rows), expected)
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            first = np.flatnonzero(~finite)[:5] + start
            raise ValueError(f"source {self.name!r} ({self.origin}): rows {first.tolist()} hold NaN or inf")
        return X

    def _checked_ids(self) -> np.ndarray:
        ids = np.asarray([str(v) for v in self.dataset[self.id_field]])
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1][:3].tolist()
            raise ValueError(f"source {self.name!r} ({self.origin}): id_field {self.id_field!r} "
                             f"has duplicate ids, e.g. {dup}")
        return ids


def _infer_format(name: str, paths: list[Path]) -> str:
    fmts = set()
    for p in paths:
        if p.is_dir():
            fmts.add("arrow")
            continue
        suffix = p.suffix.lower()
        if suffix not in FORMATS:
            raise ValueError(
                f"source {name!r}: cannot tell the format of {p} from its extension; "
                f"give format= one of {sorted(set(FORMATS.values()))}"
            )
        fmts.add(FORMATS[suffix])
    if len(fmts) > 1:
        raise ValueError(f"source {name!r}: files of several formats {sorted(fmts)}; give one format per source")
    return fmts.pop()


def _check_file(name: str, path: Path, fmt: str) -> None:
    """Fail early, with the file named, on an empty file or (json, csv) text that is not UTF-8."""
    if path.is_dir():
        return
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            empty = pq.ParquetFile(path).metadata.num_rows == 0
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"source {name!r}: {path} is not a readable parquet file ({exc})") from None
    else:
        empty = path.stat().st_size == 0
    if empty:
        raise ValueError(f"source {name!r} is empty: {path} has no rows")
    if fmt in ("json", "csv"):
        try:
            check_utf8(path)
        except ValueError as exc:
            raise ValueError(f"source {name!r}: {exc}") from None


def _read_arrow(paths: list[Path]):
    import datasets

    parts = [datasets.load_from_disk(str(p)) if p.is_dir() else datasets.Dataset.from_file(str(p)) for p in paths]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def check_utf8(path: str | os.PathLike, chunk_size: int = 1 << 20) -> None:
    """Raise ValueError naming the line and byte offset of the first invalid UTF-8 byte in ``path``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(chunk_size):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return
        except UnicodeDecodeError:
            pass
    # Error path only: locate the bad byte line by line.
    with open(path, "rb") as fh:
        offset = 0
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: not valid UTF-8 at line {lineno} (byte {offset + exc.start}); "
                                 "re-encode the file as UTF-8") from None
            offset += len(raw)
    raise ValueError(f"{path}: not valid UTF-8 (a multi-byte character is cut at the end of the file)")


# -- mixtures ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixtureSample:
    """Rows drawn from several sources: ``source[i]``-th source's row ``index[i]``.

    Attributes
    ----------
    names : list of str
        Source names, in the order given to :func:`sample_mixture`.
    source : ndarray of int, shape (size,)
        Position in ``names`` of each drawn row's source.
    index : ndarray of int, shape (size,)
        Row of each drawn sample inside its source.
    counts : dict of str to int
        Rows drawn per source (repeats counted).
    """

    names: list
    source: np.ndarray
    index: np.ndarray
    counts: dict

    def __len__(self) -> int:
        return len(self.index)


def allocate(ratios: np.ndarray, size: int) -> np.ndarray:
    """Split ``size`` into integer counts proportional to ``ratios`` (largest remainder; sums to size)."""
    exact = np.asarray(ratios, dtype=np.float64) * size
    counts = np.floor(exact).astype(np.int64)
    short = size - int(counts.sum())
    if short:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def source_order(name: str, n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on (seed, name): the draw order of a source."""
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return rng.permutation(n)


def draw_rows(name: str, n: int, count: int, seed: int) -> np.ndarray:
    """Rows ``count`` draws take from a source of ``n`` rows: whole passes over its order
    (:func:`source_order`), then a prefix; shape (count,)."""
    order = source_order(name, n, seed)
    return np.tile(order, -(-count // n))[:count]


def sample_mixture(sources: Sequence[Source], ratios, size: int, *, seed: int = 0) -> MixtureSample:
    """Draw ``size`` rows from ``sources`` at mixture ``ratios``, deterministically under ``seed``.

    Each source's rows are taken in a fixed random order that depends only on the seed and the
    source's name, so a smaller draw is a prefix of a larger one (nested subsets) and adding a
    source does not change what the others give. A source asked for more rows than it holds is
    repeated: whole passes over its order, then a prefix.

    Parameters
    ----------
    sources : sequence of Source
    ratios : array-like of float, shape (n_sources,)
        Non-negative, summing to 1 (within 1e-6).
    size : int
        Total rows to draw.
    seed : int
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    if ratios.shape != (len(sources),):
        raise ValueError(f"ratios has shape {ratios.shape}, expected ({len(sources)},): one per source")
    if not np.isfinite(ratios).all() or (ratios < 0).any() or abs(ratios.sum() - 1) > 1e-6:
        raise ValueError(f"ratios must be finite, >= 0 and sum to 1; got {ratios.tolist()} (sum {ratios.sum():.6g})")
    if int(size) != size or size < 1:
        raise ValueError(f"size={size!r} must be a positive integer")
    counts = allocate(ratios, int(size))
    src, idx = [], []
    for j, (s, c) in enumerate(zip(sources, counts)):
        if c == 0:
            continue
        idx.append(draw_rows(s.name, len(s), int(c), seed))
        src.append(np.full(c, j, dtype=np.int64))
    return MixtureSample(names=names, source=np.concatenate(src), index=np.concatenate(idx),
                         counts={n: int(c) for n, c in zip(names, counts)})
