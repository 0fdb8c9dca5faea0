"""Run directories and the run-level stages that the CLI and the pipelines share.

A run directory holds ``config.yaml``, one folder per stage output (``embeddings/<source>/``, …) and
``metrics.json``. Every path written is built from validated names below the run directory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from datamix.config import ConfigError, RunConfig
from datamix.data.sources import Source, check_name
from datamix.io import atomic_write, json_safe, remove_orphans, write_json, write_text

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)


class RunDirBusy(ValueError):
    """Another process is writing into this run directory."""


LOCK_FILE = ".datamix.lock"

#: the results a run writes into its directory, removed when a run of another config starts over
#: there (``restart``). Kept: the caches keyed by exactly what they were computed from, and checked
#: when read — embedding stores, scores, proxy runs (``runs.csv``, ``verify_runs.csv``), dedup,
#: the offers' embeddings and HF's reading cache — reused only where their inputs are unchanged.
OUTPUTS = ("config.yaml", "metrics.json", "curate_config.json", "pool_runs.csv", "mixture_runs.csv", "law.json",
           "predictions.csv", "optimize.json", "plan.yaml", "plan.json", "frontier.csv", "apply.json", "curated",
           "verify.json", "frontier_check.json", "report.html", "report.md", "figures", "prune_eval")


class ConfigChanged(ValueError):
    """The run directory was made with another config."""


class RunDir:
    """The folder of one run; every output path is made inside it."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"run directory {self.root} is a file, not a folder; give --out a folder")
        self.created = not self.root.exists()  # made by this run: removed again if it stays empty
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        """``root/part/...``, each part a safe name (no separators, no ``..``)."""
        return self.root.joinpath(*(check_name(p, "path part") for p in parts))

    def embeddings(self, source: str) -> Path:
        return self.path("embeddings", source)

    @contextlib.contextmanager
    def lock(self):
        """Hold the directory's writer lock for the ``with`` block: an OS file lock on
        ``.datamix.lock``, which holds the writer's pid, host, start time and command, is released
        when the process ends however it ends, and is removed at the end of the block.

        Raises
        ------
        RunDirBusy
            When another writer holds it, naming that writer.
        """
        if fcntl is None:  # pragma: no cover - no flock on this OS: one writer is the user's duty
            yield self
            return
        path = self.root / LOCK_FILE
        while True:
            fh = open(path, "a+", encoding="utf-8")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown process"
                fh.close()
                raise RunDirBusy(f"run directory {self.root} is in use by another datamix run ({holder}); wait for "
                                 "it to finish, or give this run another --out") from None
            try:  # the holder before us may have removed the file between our open and our lock
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fh.fileno()).st_ino:
                break
            fh.close()
        try:
            fh.truncate(0)  # a killed writer leaves its line behind
            fh.write(f"pid {os.getpid()} on host {socket.gethostname()}, started "
                     f"{time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(sys.argv)[:200]}")
            fh.flush()
            yield self
        finally:
            path.unlink(missing_ok=True)  # before unlocking: a waiting opener sees the inode gone and retries
            fh.close()

    def save_config(self, cfg: RunConfig) -> Path:
        return write_text(self.path("config.yaml"), cfg.to_yaml())

    def claim(self, cfg: RunConfig, *, restart: bool = False) -> None:
        """Make this directory ``cfg``'s: refuse (:class:`ConfigChanged`, naming the keys that differ)
        when it holds another config's run, unless ``restart``, which removes that run's results
        (:data:`OUTPUTS`; its checked caches are kept) first. Call it holding the lock."""
        import yaml

        path = self.path("config.yaml")
        if not path.is_file() or not hasattr(cfg, "to_yaml"):
            return
        ours = yaml.safe_load(cfg.to_yaml())
        try:
            theirs = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            theirs = None
        if theirs == ours:
            return
        if not restart:
            keys = _differences(theirs, ours) if isinstance(theirs, dict) else ["(unreadable config.yaml)"]
            raise ConfigChanged(
                f"run directory {self.root} holds a run of another config (differs in {', '.join(keys[:8])}"
                f"{' ...' if len(keys) > 8 else ''}); rerun with --restart (Python: restart=True) to start over "
                "there (its results are removed; its embeddings, scores and proxy runs are kept and reused only "
                "where their inputs are unchanged), or give this run another --out")
        logger.warning("run directory %s held a run of another config: starting over (restart)", self.root)
        for name in OUTPUTS:
            p = self.root / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)

    def save_metrics(self, metrics: dict) -> Path:
        """``metrics.json``; NaN/inf are written as null (see :func:`datamix.io.json_safe`)."""
        return write_json(self.path("metrics.json"), json_safe(metrics))

    def cached(self, name: str, key: dict, compute: Callable[[], object],
               check: Callable[[object], bool] | None = None):
        """``compute()``'s result, kept in the JSON file ``name`` beside ``key`` and reused while ``key``
        (what the result depends on: plan, seeds, data fingerprints…) is unchanged and ``check`` (if
        given) accepts the stored result (e.g. the files it lists are still there, intact).

        Both the fresh and the reused result are the JSON round trip of ``compute()``'s (tuples become
        lists, NaN None), so a stage reads the same either way. A damaged file is recomputed.
        """
        path = self.path(name)
        key = _json_round_trip(key)
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
            except ValueError:
                stored = None
            if (isinstance(stored, dict) and stored.get("key") == key and "value" in stored
                    and (check is None or check(stored["value"]))):
                logger.info("reusing %s (its inputs are unchanged)", path.name)
                return stored["value"]
        value = _json_round_trip(compute())
        write_json(path, {"key": key, "value": value})
        return value


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def _json_round_trip(obj):
    return json.loads(json.dumps(json_safe(obj), allow_nan=False))


def check_until(pipeline: str, stages: Sequence[str], until: str | None) -> None:
    """Raise ValueError unless ``until`` (where a run stops) is None or one of the pipeline's ``stages``."""
    if until is not None and until not in stages:
        raise ValueError(f"the {pipeline} pipeline has no stage {until!r}; its stages: {', '.join(stages)}")


def stage_done(metrics: dict, stage: str, until: str | None, stages: Sequence[str], *, record: bool = True) -> bool:
    """Append ``stage`` to ``metrics["stages_done"]`` (unless ``record`` is False: a stage the config
    turned off); True when the run stops after it, at ``until`` or at the last of ``stages``."""
    if record:
        metrics["stages_done"].append(stage)
    return stage in (until, stages[-1])


def load_sources(cfg: RunConfig, run: RunDir) -> tuple[list[Source], Source | None]:
    """The candidate sources and the target set (None when the config names none)."""
    data = cfg.data
    if data is None:
        return [], None
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
        options = dict(field=sc.field, kind=sc.kind, label_field=sc.label, id_field=sc.id,
                       price=0.0 if sc.owned else sc.price, offer_size=sc.offer_size)
        if sc.hub is not None:
            return Source.from_hub(sc.name, sc.hub, split=sc.split, **options)
        return Source.from_files(sc.name, cfg.resolve(sc.path), format=sc.format,
                                 cache_dir=run.path("cache"), **options)

    sources, target = [build(s) for s in data.sources], (build(data.target) if data.target else None)
    check_vectors(sources + ([target] if target is not None else []))
    return sources, target


def check_vectors(sources: Sequence[Source], chunk: int = 65536) -> None:
    """Read every vector source once, in chunks: one dimension per source and across them, all
    values finite (ValueError naming the source and row)."""
    dims = {}
    for s in sources:
        if s.kind != "vector":
            continue
        for start in range(0, len(s), chunk):
            dims[s.name] = s.vectors(start, min(start + chunk, len(s))).shape[1]
    if len(set(dims.values())) > 1:
        raise ValueError(f"vector sources have different dimensions: {dims}; every source and the target must "
                         "hold vectors of one dimension")


def embed_stage(cfg: RunConfig, run: RunDir, sources: list[Source], *, progress: bool = True,
                engine=None) -> dict:
    """Embed every source into ``run/embeddings/<name>`` (resuming) on the config's engine (or
    ``engine``); return a summary per source. Sources of one kind are embedded together: one
    model load per kind (per actor on Ray)."""
    from datamix.embed import embed_sources
    from datamix.engine import get_engine

    engine = get_engine(engine if engine is not None else getattr(cfg, "engine", None))
    if cfg.embed.trust_remote_code:
        logger.warning("embed.trust_remote_code is true: the model %r may run code from its repository on this "
                       "machine; use it only with a model you trust", cfg.embed.model)
    summary = {}
    for kind in dict.fromkeys(s.kind for s in sources):
        group = [s for s in sources if s.kind == kind]
        t0 = time.perf_counter()
        stores = embed_sources(group, cfg.embed.model, stores={s.name: run.embeddings(s.name) for s in group},
                               shard_size=cfg.embed.shard_size, batch_size=cfg.embed.batch_size,
                               device=cfg.embed.device, trust_remote_code=cfg.embed.trust_remote_code,
                               progress=progress, engine=engine)
        seconds = time.perf_counter() - t0
        n_total = sum(len(st) for st in stores.values())
        for name, store in stores.items():
            summary[name] = {"n": len(store), "dim": store.dim, "model": store.model, "engine": engine.name,
                             "seconds": round(seconds * len(store) / max(n_total, 1), 3),
                             "samples_per_s": round(n_total / max(seconds, 1e-9), 1)}
        logger.info("embedded %d %s sources (%d samples) with %s on %s in %.1f s", len(group), kind, n_total,
                    cfg.embed.model, engine.name, seconds)
    return summary


def check_reachable(repo_id: str, *, repo_type: str, key: str) -> None:
    """Refuse at once a model or dataset id that is neither a local folder nor in the HF cache when the
    hub cannot be reached (offline mode, or no answer within 10 s): the libraries would otherwise
    retry for minutes. ``key`` names the config key in the message."""
    import huggingface_hub
    from huggingface_hub import constants

    path = Path(repo_id).expanduser()
    if path.exists():
        return
    if repo_id.startswith(("/", ".", "~")) or repo_id.count("/") > 1:
        raise FileNotFoundError(f"{key}: {repo_id!r} is not a folder on this machine")
    try:
        huggingface_hub.snapshot_download(repo_id, repo_type=repo_type, local_files_only=True)
        return
    except Exception:  # noqa: BLE001 - not (completely) in the cache: ask the hub
        pass
    how = (f"download it where there is network (huggingface-cli download {repo_id} --repo-type {repo_type} "
           f"--local-dir DIR) and set {key} to that folder")
    if constants.HF_HUB_OFFLINE:
        raise ValueError(f"{key}: {repo_id!r} is not a local folder nor in the Hugging Face cache, and the hub is "
                         f"off (HF_HUB_OFFLINE); {how}")
    try:
        huggingface_hub.HfApi().repo_info(repo_id, repo_type=repo_type, timeout=10)
    except Exception as exc:  # noqa: BLE001 - no network, unknown id, gated repo: all end here
        raise ValueError(f"{key}: {repo_id!r} is not a local folder nor in the Hugging Face cache, and the hub "
                         f"cannot give it ({type(exc).__name__}: {str(exc)[:200]}); {how}") from None


#: embedding models that need neither files nor network (bundled or built in)
LOCAL_MODELS = ("auto", "minilm", "identity", "pixels")


def preflight(cfg: RunConfig) -> None:
    """The checks of a config that read no data: the embedding model and the hub datasets it names
    can be had (:func:`check_reachable`)."""
    from datamix.embed.text import MINILM

    if cfg.embed.model not in LOCAL_MODELS + (MINILM,):
        check_reachable(cfg.embed.model, repo_type="model", key="embed.model")
    data = cfg.data
    if data is None:  # the runs pipeline reads a table, no sources
        return
    for i, sc in enumerate(data.sources + ([data.target] if data.target else [])):
        if sc.hub is not None:
            key = "data.target.hub" if sc is data.target else f"data.sources[{i}].hub ({sc.name})"
            check_reachable(sc.hub, repo_type="dataset", key=key)


def check_config(cfg: RunConfig) -> None:
    """Every check a run of ``cfg`` makes before it writes, without a run directory: :func:`preflight`,
    then the sources are read (their files exist and parse; HF's reading cache goes to a temporary
    folder) and the pipeline's own checks run (``pipelines.<name>.check``)."""
    import importlib
    import tempfile

    preflight(cfg)
    pipeline = importlib.import_module(f"pipelines.{cfg.pipeline}")
    with tempfile.TemporaryDirectory(prefix="datamix-info-") as tmp:
        sources, target = load_sources(cfg, RunDir(tmp))
        pipeline.check(cfg, sources, target)


def one_writer(run: Callable) -> Callable:
    """Decorate a pipeline's ``run(cfg, run_dir, ...)`` to hold ``run_dir``'s writer lock while it
    runs: a second run on the same directory is refused (:class:`RunDirBusy`) instead of mixing its
    files with the first one's; so is a run of another config than the directory's unless it is
    called with ``restart=True`` (:meth:`RunDir.claim`)."""

    @functools.wraps(run)
    def locked(cfg, run_dir: RunDir, *args, restart: bool = False, **kwargs):
        try:
            if isinstance(cfg, RunConfig):
                preflight(cfg)
            with run_dir.lock():
                run_dir.claim(cfg, restart=restart)
                orphans = remove_orphans(run_dir.root)
                if orphans:
                    logger.info("removed %d temporary file(s) that an interrupted run left in %s", len(orphans),
                                run_dir.root)
                fresh = not run_dir.path("config.yaml").exists() and not run_dir.path("cache").exists()
                try:
                    return run(cfg, run_dir, *args, **kwargs)
                except BaseException:
                    if fresh and not run_dir.path("config.yaml").exists():  # refused before writing anything of
                        shutil.rmtree(run_dir.path("cache"), ignore_errors=True)  # its own: drop the reading cache
                    raise
        finally:
            if run_dir.created and run_dir.root.is_dir() and not any(run_dir.root.iterdir()):
                run_dir.root.rmdir()  # a refused run leaves no empty folder behind

    return locked


def load_features(run: RunDir, source: Source) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (n, d) float32 of an embedded source, row-aligned, and its labels (n,) as the
    source holds them (any hashable type), or None when it is unlabelled."""
    from datamix.data.store import EmbeddingStore

    X = EmbeddingStore(run.embeddings(source.name)).load()
    labels = source.labels
    return np.ascontiguousarray(X, dtype=np.float32), None if labels is None else np.asarray(labels)


def open_stores(run: RunDir, sources: list[Source]) -> dict:
    """The embedding store of each source, checked against the source's ids."""
    from datamix.data.store import EmbeddingStore

    out = {}
    for s in sources:
        store = EmbeddingStore(run.embeddings(s.name))
        if len(store) != len(s) or not np.array_equal(store.ids, s.ids):
            raise ValueError(f"embeddings at {run.embeddings(s.name)} do not match source {s.name!r} "
                             "(different ids); rerun the embed stage")
        out[s.name] = store
    return out


def load_embeddings(run: RunDir, sources: list[Source]) -> dict:
    """The embeddings of each source from the run's stores, float32 of shape (n_i, d)."""
    return {name: store.load() for name, store in open_stores(run, sources).items()}


def score_stage(cfg: RunConfig, run: RunDir, sources: list[Source], *, engine=None) -> dict:
    """Score every source's samples (on their union) into ``run/scores/<name>.parquet``, streaming
    the embeddings from the stores on the config's engine (or ``engine``)."""
    from datamix.engine import get_engine
    from datamix.prune.streaming import score_stores

    sc = cfg.score
    engine = get_engine(engine if engine is not None else getattr(cfg, "engine", None))
    t0 = time.perf_counter()
    tables = score_stores(open_stores(run, sources), {s.name: s.labels for s in sources},
                          metrics=sc.metrics, n_clusters=sc.n_clusters, semdedup_eps=sc.semdedup_eps,
                          dynamics_model=sc.dynamics_model, dynamics_epochs=sc.dynamics_epochs,
                          dynamics_seeds=sc.dynamics_seeds, seed=cfg.seed, engine=engine)
    summary = {}
    for s in sources:
        table = tables[s.name]
        table.insert(0, "id", s.ids)
        atomic_write(run.path("scores", f"{s.name}.parquet"), lambda fh, t=table: t.to_parquet(fh, index=False))
        summary[s.name] = {m: round(float(table[m].mean()), 6) for m in table.columns if m != "id"}
    logger.info("scored %d sources in %.1f s on %s", len(sources), time.perf_counter() - t0, engine.name)
    return summary
