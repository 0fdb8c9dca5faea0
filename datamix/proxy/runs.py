"""Measuring mixtures with proxy trainings, and the runs table that keeps every measurement.

A *run* trains a proxy model (:mod:`datamix.proxy.trainers`) on a mixture of sources at a size —
samples or tokens seen, split over the sources by the mixture ratios — and measures it on the
target set. Runs are keyed by what determines their outcome (the data, the
trainer's settings, the mixture ratios, the size and the seed), so a measurement made once is found
again and reused by later fits instead of being retrained.

The runs table is a CSV file with one row per run::

    run_id, data_key, trainer, size, seed, p_<source>..., metric, metric_name, loss, n_train,
    seen, unique, epochs, wall_s, created, check

``p_<source>`` holds the ratio of each source (a column per source name; NaN where a run did not
involve that source), ``metric`` the target-set metric (``metric_name``: accuracy for the
classifiers, greater is better; bits per byte for the language model, lower is better), ``loss``
the target-set cross-entropy; ``seen`` the units (samples or tokens) the run trained on,
``unique`` the distinct ones among them and ``epochs = seen / unique``; ``check`` a hash of the run's id and
results, written with the row: a row whose results were changed after it was written (or that has
no check) is reported and left out when the table is read, so the run is trained again rather than
its altered result reused. The file is rewritten atomically on every append (readers see the old
table or the new one); it is meant for one writer at a time.

The trainings run on an engine (:mod:`datamix.engine`): in this process (``local``, the default)
or one Ray task each (``ray``). Each run is appended to the table as it finishes, so an
interrupted call loses only the runs in flight and a rerun trains only the missing ones; at the end
of a call the table holds its runs in call order, whatever order they finished in, so both engines
write the same table (up to ``wall_s`` and ``created``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from datamix.data.sources import Source, allocate
from datamix.engine import Engine, get_engine
from datamix.io import write_text
from datamix.predict.base import RATIO_PREFIX, ratio_columns
from datamix.proxy.trainers import ProxyTrainer

__all__ = ["ProxyTrainer", "RunsTable", "MixtureRun", "MixtureRunner", "ratio_columns", "RATIO_PREFIX"]

logger = logging.getLogger(__name__)

BASE_COLUMNS = ("run_id", "data_key", "trainer", "size", "seed")
RESULT_COLUMNS = ("metric", "metric_name", "loss", "n_train", "seen", "unique", "epochs", "wall_s", "created")
CHECKED_COLUMNS = ("run_id", "size", "seed", "metric", "metric_name", "loss", "n_train", "seen", "unique", "epochs")


def row_check(row: Mapping) -> str:
    """Hash of a run's id and results (the columns reuse depends on), as stored in ``check``."""
    def text(v) -> str:
        if isinstance(v, str):
            return v
        return "nan" if v is None or pd.isna(v) else repr(float(v))

    return hashlib.sha1("|".join(text(row.get(c)) for c in CHECKED_COLUMNS).encode()).hexdigest()[:16]


def _row_checks(df: pd.DataFrame) -> list[str]:
    """:func:`row_check` of every row (through plain dicts: a table is checked on every read)."""
    return [row_check(r) for r in df.reindex(columns=list(CHECKED_COLUMNS)).to_dict("records")]


class RunsTable:
    """A CSV table of runs, appended atomically and looked up by ``run_id``.

    Parameters
    ----------
    path : str or Path
        The CSV file (created on the first append).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> table = RunsTable(pathlib.Path(tempfile.mkdtemp()) / "runs.csv")
    >>> len(table.read())
    0
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._cache: pd.DataFrame | None = None
        self._mtime: float | None = None

    def read(self) -> pd.DataFrame:
        """The whole table (an empty frame with the base columns when the file does not exist)."""
        if not self.path.exists():
            return pd.DataFrame(columns=list(BASE_COLUMNS + RESULT_COLUMNS))
        mtime = self.path.stat().st_mtime_ns
        if self._cache is None or mtime != self._mtime:
            try:
                df = pd.read_csv(self.path, dtype={"run_id": str, "data_key": str, "trainer": str})
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise ValueError(f"runs table {self.path} is not a readable CSV: {exc}") from None
            missing = [c for c in BASE_COLUMNS + ("metric",) if c not in df.columns]
            if missing:
                raise ValueError(f"runs table {self.path} lacks column(s) {missing}; is it a datamix runs.csv?")
            self._cache, self._mtime = self._verified(df), mtime
        return self._cache.copy()

    def _verified(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows whose ``check`` matches their contents; the others are named in a warning."""
        stored = df["check"] if "check" in df.columns else pd.Series("", index=df.index)
        ok = np.array([str(c) == h for c, h in zip(stored, _row_checks(df))], dtype=bool)
        if not ok.all():
            bad = df.loc[~ok, "run_id"].astype(str).tolist()
            logger.warning("runs table %s: %d row(s) do not match their check (changed after they were written, "
                           "or written without one): %s; those runs are not reused", self.path, len(bad),
                           ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
        return df.loc[ok].reset_index(drop=True)

    def get(self, run_id: str) -> pd.Series | None:
        """The row of ``run_id``, or None."""
        df = self.read()
        hit = df.loc[df["run_id"] == run_id]
        return None if hit.empty else hit.iloc[-1]

    def append(self, rows: pd.DataFrame | Sequence[Mapping]) -> None:
        """Add rows (a frame or a list of dicts); a row whose ``run_id`` exists replaces the old one."""
        new = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if new.empty:
            return
        new = new.assign(check=_row_checks(new))
        old = self.read()
        both = new if old.empty else pd.concat([old, new], ignore_index=True, sort=False)
        both = both.drop_duplicates("run_id", keep="last")
        ratio = sorted(c for c in both.columns if c.startswith(RATIO_PREFIX))
        order = list(BASE_COLUMNS) + ratio + list(RESULT_COLUMNS) + ["check"]
        both = both[[c for c in order if c in both.columns] + [c for c in both.columns if c not in order]]
        buf = io.StringIO()
        both.to_csv(buf, index=False)  # floats written exactly (shortest repr): reuse is bit-identical
        write_text(self.path, buf.getvalue())
        self._cache, self._mtime = None, None


@dataclass(frozen=True)
class MixtureRun:
    """One measured mixture (a row of the runs table).

    Attributes
    ----------
    run_id : str
    ratios : dict of str to float
    size : int
    seed : int
    metric : float
        Target-set metric (accuracy, or bits per byte for a language model).
    loss : float
        Target-set cross-entropy.
    wall_s : float
        Seconds the training took (0 when reused from the table).
    reused : bool
        True when found in the runs table instead of trained.
    """

    run_id: str
    ratios: dict
    size: int
    seed: int
    metric: float
    loss: float
    wall_s: float
    reused: bool


def _fingerprint(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()[:16]


def _result_of(old: pd.Series) -> dict:
    """The result columns of a stored run (tables written before seen/unique/epochs give NaN)."""
    out = {"metric": float(old["metric"]), "metric_name": old.get("metric_name", "accuracy"),
           "loss": float(old["loss"]), "n_train": int(old["n_train"]), "wall_s": float(old["wall_s"]),
           "created": old["created"]}
    for key in ("seen", "unique", "epochs"):
        out[key] = float(old[key]) if key in old and pd.notna(old[key]) else float("nan")
    return out


def _ratio_key(ratios: np.ndarray) -> str:
    return ",".join(f"{r:.9f}" for r in ratios)


def _train_run(task: tuple, *, trainer, data: Sequence, names: Sequence[str], target) -> dict:
    """One proxy training, as an engine task: ``task = (counts, seed)`` with ``counts`` the units
    drawn from each source (shape (n_sources,)); the trainer's results plus ``wall_s`` (seconds)."""
    counts, seed = task
    t0 = time.perf_counter()
    out = trainer.train_mixture(data, names, counts, target, seed=seed)
    return {**out, "wall_s": round(time.perf_counter() - t0, 6)}


class MixtureRunner:
    """Measure mixtures of sources with proxy trainings, reusing the runs table.

    Every source's features and labels are read once, at construction (``features`` gives them for
    sources that are not vectors, e.g. embeddings from an :class:`~datamix.data.EmbeddingStore`).

    Parameters
    ----------
    sources : sequence of Source
        The candidate sources, in the order of the ratios.
    target : Source or (X, y)
        Where the metric is measured: X of shape (n_test, n_features), y of shape (n_test,) for a
        classifier; texts or :class:`~datamix.proxy.trainers.TokenDocs` for the language model.
    trainer : ProxyTrainer or LMTrainer, default=ProxyTrainer()
    table : RunsTable, str, Path or None, default=None
        Where runs are kept and looked up; None keeps nothing.
    features : mapping of str to prepared data, optional
        Data of sources by name, row-aligned with the source: features (n_i, n_features) and
        labels (n_i,) for a classifier, :class:`~datamix.proxy.trainers.TokenDocs` for the LM.
    flush_every : int, default=1
        New runs are appended to the table in batches of this many (and at the end of each call):
        1 records each run as it finishes; raise it for trainings of milliseconds, where rewriting
        the table would dominate.
    engine : None, str, EngineConfig or Engine, default=None
        Where the trainings run (:func:`datamix.engine.get_engine`): None or ``"local"`` in this
        process, one after the other; ``"ray"`` one Ray task each (one GPU each when the cluster
        has GPUs and the trainer's device is not ``cpu``), with the trainer, the sources' data and
        the target put in the object store once per call. Both give the same runs.

    Attributes
    ----------
    names : list of str
    data_key : str
        Fingerprint of the sources' and target's arrays: runs measured on other data are not reused.
    engine : Engine
        The engine the trainings run on.
    """

    def __init__(self, sources: Sequence[Source], target, *, trainer: ProxyTrainer | None = None,
                 table: RunsTable | str | Path | None = None, features: Mapping | None = None,
                 flush_every: int = 1, engine: Engine | str | None = None):
        if not sources:
            raise ValueError("MixtureRunner needs at least one source")
        self.sources = list(sources)
        self.names = [s.name for s in self.sources]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"source names must be unique, got {self.names}")
        features = dict(features or {})
        self.trainer = trainer if trainer is not None else ProxyTrainer()
        self._data = [self.trainer.prepare(features.get(s.name, s), f"source {s.name!r}") for s in self.sources]
        for s, d in zip(self.sources, self._data):
            if self.trainer.rows_of(d) != len(s):
                raise ValueError(f"features of source {s.name!r} have {self.trainer.rows_of(d)} rows, "
                                 f"the source {len(s)}")
        self._target = self.trainer.prepare(target, "target")
        self.trainer.check_data(self._data, self._target)
        self.table = RunsTable(table) if isinstance(table, (str, Path)) else table
        if int(flush_every) != flush_every or flush_every < 1:
            raise ValueError(f"flush_every={flush_every!r} must be an integer >= 1")
        self.flush_every = int(flush_every)
        self.engine = get_engine(engine)
        self.data_key = _fingerprint(np.array(self.names, dtype=object), *[a for pair in self._data for a in pair],
                                     *self._target)

    @property
    def sizes(self) -> dict[str, int]:
        """Unique units (samples, or tokens for a language model) of every source."""
        return {n: self.trainer.size_of(d) for n, d in zip(self.names, self._data)}

    @property
    def target_arrays(self):
        """The target as the trainer prepared it (classifiers: features (n_test, n_features) and
        labels (n_test,)), read once."""
        return self._target

    def run_id(self, ratios: npt.ArrayLike, size: int, seed: int) -> str:
        """The key of a run: a hash of data, trainer, names, ratios, size and seed."""
        key = "|".join([self.data_key, self.trainer.signature, ",".join(self.names),
                        _ratio_key(np.asarray(ratios, dtype=np.float64)), str(int(size)), str(int(seed))])
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def _check_ratios(self, ratios) -> np.ndarray:
        p = np.asarray(ratios, dtype=np.float64)
        if p.shape != (len(self.names),):
            raise ValueError(f"ratios has shape {p.shape}, expected ({len(self.names)},): one per source {self.names}")
        if not np.isfinite(p).all() or (p < 0).any() or abs(p.sum() - 1) > 1e-6:
            raise ValueError(f"ratios must be >= 0 and sum to 1, got {p.tolist()} (sum {p.sum():.6g}); "
                             "normalise them first")
        return p

    def measure(self, ratios: npt.ArrayLike, size: int, seed: int = 0) -> MixtureRun:
        """Measure one mixture (or find it in the table); see :meth:`measure_runs`."""
        r = self.measure_runs([(ratios, size, seed)]).iloc[0]
        return MixtureRun(r["run_id"], {n: float(r[c]) for n, c in zip(self.names, ratio_columns(self.names))},
                          int(r["size"]), int(r["seed"]), float(r["metric"]), float(r["loss"]),
                          0.0 if r["reused"] else float(r["wall_s"]), bool(r["reused"]))

    def measure_many(self, mixtures: npt.ArrayLike, sizes: Sequence[int], *,
                     seeds: npt.ArrayLike = (0,)) -> pd.DataFrame:
        """Measure every mixture at every size and seed, training only what the table lacks.

        Parameters
        ----------
        mixtures : array-like of shape (n_mixtures, n_sources)
            Ratios, each row >= 0 and summing to 1.
        sizes : sequence of int
            Training sizes: samples, or tokens for a language model (``trainer.unit``), seen.
        seeds : sequence of int, or array-like of int of shape (n_mixtures, n_seeds), default=(0,)
            Seeds of the draw and of the training: the same for every mixture, or a row per
            mixture. Draws of one seed are nested (:func:`~datamix.data.sample_mixture`), so
            mixtures measured at one seed share most of their samples and their measurement
            errors; a row of distinct seeds per mixture makes the measurements independent.

        Returns
        -------
        DataFrame
            One row per (mixture, size, seed), in that nesting order; see :meth:`measure_runs`.
        """
        mixtures = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        seed_rows = np.asarray(seeds)
        if seed_rows.ndim == 1:
            seed_rows = np.broadcast_to(seed_rows, (len(mixtures), seed_rows.size))
        if seed_rows.ndim != 2 or len(seed_rows) != len(mixtures) or not np.issubdtype(seed_rows.dtype, np.integer):
            raise ValueError(f"seeds has shape {seed_rows.shape} (dtype {seed_rows.dtype}); expected integers, "
                             f"one sequence for all mixtures or a row per mixture ({len(mixtures)}, n_seeds)")
        return self.measure_runs([(p, n, seed) for p, p_seeds in zip(mixtures, seed_rows)
                                  for n in sizes for seed in p_seeds])

    def measure_runs(self, runs: Iterable[tuple]) -> pd.DataFrame:
        """Measure the runs ``(ratios, size, seed)``, training on the engine only what the table lacks.

        Every run is checked before any training. New runs are appended to the table as they
        finish (``flush_every``), then once more in call order when they finished in another order.

        Parameters
        ----------
        runs : iterable of (array-like of shape (n_sources,), int, int)
            Ratios (>= 0, summing to 1), size (units seen, ``trainer.unit``) and seed of each run.

        Returns
        -------
        DataFrame
            One row per run, in the order given, in the runs-table layout plus a ``reused`` column
            (True when found in the table instead of trained).
        """
        known = self.table.read().set_index("run_id") if self.table is not None else None
        rows, todo = [], []  # todo: (position in rows, (counts per source, seed)) of the runs to train
        for ratios, size, seed in runs:
            p = self._check_ratios(ratios)
            if int(size) != size or size < 1:
                raise ValueError(f"sizes must be positive integers, got {size!r}")
            if not isinstance(seed, (int, np.integer)):
                raise ValueError(f"seeds must be integers, got {seed!r}")
            n, seed = int(size), int(seed)
            rid = self.run_id(p, n, seed)
            base = {"run_id": rid, "data_key": self.data_key, "trainer": self.trainer.signature,
                    "size": n, "seed": seed, **dict(zip(ratio_columns(self.names), p))}
            if known is not None and rid in known.index:
                old = known.loc[rid]
                rows.append({**base, **_result_of(old.iloc[-1] if isinstance(old, pd.DataFrame) else old),
                             "reused": True})
            else:
                todo.append((len(rows), (allocate(p, n), seed)))
                rows.append(base)
        shared = {"trainer": self.trainer, "data": self._data, "names": self.names, "target": self._target}
        tasks = self.engine.map_tasks(_train_run, [task for _, task in todo], shared=shared, stage="measure",
                                      use_gpu=getattr(self.trainer, "device", "cpu") != "cpu")
        done, pending = [], []  # positions in rows of the trained runs, in the order they finished
        try:
            for j, out in tasks:
                i = todo[j][0]
                rows[i] = {**rows[i], "metric": out["metric"], "metric_name": self.trainer.metric_name,
                           "loss": out["loss"], "n_train": out["n_train"], "seen": out["seen"],
                           "unique": out["unique"], "epochs": out["seen"] / max(out["unique"], 1),
                           "wall_s": out["wall_s"], "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "reused": False}
                done.append(i)
                pending.append(i)
                if self.table is not None and len(pending) >= self.flush_every:
                    self._record([rows[k] for k in pending])
                    pending = []
        finally:  # also when a training fails or the call is interrupted: keep what finished
            if self.table is not None:
                in_order = sorted(done)
                # runs that finished out of order (Ray) are appended once more in call order (the
                # table keeps the last copy of a run_id): the table the local engine writes
                self._record([rows[k] for k in (pending if done == in_order else in_order)])
        logger.info("measured %d runs (%d trained, %d reused from the runs table)", len(rows), len(todo),
                    len(rows) - len(todo))
        return pd.DataFrame(rows)

    def _record(self, rows: Sequence[dict]) -> None:
        """Append trained rows (without their ``reused`` flag) to the table."""
        self.table.append([{k: v for k, v in r.items() if k != "reused"} for r in rows])
