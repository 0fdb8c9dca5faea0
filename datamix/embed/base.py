"""The embedding stage: encode a source shard by shard into a resumable EmbeddingStore.

The work on one shard — read its rows, hash them, encode them, write the shard's files — is the
step :class:`EmbedShards`, which an execution engine (:mod:`datamix.engine`) runs in this process
or on Ray actors; the driver alone lists finished shards in the store's manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from datamix.data.sources import Source
from datamix.data.store import EmbeddingStore, ShardRecord, StoreWriter, write_shard

logger = logging.getLogger(__name__)

DEFAULT_MODEL = {"text": "minilm", "vector": "identity", "image": "pixels"}


class Encoder(Protocol):
    """What the embed stage needs of an encoder."""

    name: str

    def encode(self, batch) -> np.ndarray:
        """Embed a batch of samples (texts, images, or an (m, d) array) into float32, shape (m, dim)."""


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class EncoderSpec:
    """The arguments of :func:`get_encoder`, to build an encoder where it runs (a Ray actor)
    rather than here; ``name`` is the name the built encoder will have."""

    model: str
    kind: str = "text"
    device: str = "auto"
    batch_size: int | None = None
    trust_remote_code: bool = False

    @property
    def name(self) -> str:
        model = DEFAULT_MODEL[self.kind] if self.model == "auto" else self.model
        if self.kind == "text":
            from datamix.embed.text import TextEncoder

            return TextEncoder.resolve_name(model)
        return model  # "identity" for vectors, "pixels" for images

    def build(self) -> Encoder:
        return get_encoder(self.model, kind=self.kind, device=self.device, batch_size=self.batch_size,
                           trust_remote_code=self.trust_remote_code)


def get_encoder(model="auto", *, kind: str = "text", device: str = "auto", batch_size: int | None = None,
                trust_remote_code: bool = False) -> Encoder:
    """Return an encoder for ``kind`` samples.

    ``model`` is an encoder object (anything with ``name`` and ``encode``), or a name: for text
    ``"minilm"`` (the bundled all-MiniLM-L6-v2) or any sentence-transformers model name or path; for
    vectors ``"identity"``; for images ``"pixels"`` or a ``torch.nn.Module``.
    """
    if not isinstance(model, str) and hasattr(model, "encode") and hasattr(model, "name"):
        return model
    if isinstance(model, EncoderSpec):
        return model.build()
    if model == "auto":
        model = DEFAULT_MODEL[kind]
    if kind == "vector":
        from datamix.embed.vectors import VectorEncoder

        if model != "identity":
            raise ValueError(f"model={model!r} for vector samples: vectors pass through, use model='identity'")
        return VectorEncoder()
    if kind == "image":
        from datamix.embed.image import ImageEncoder

        return ImageEncoder(None if model == "pixels" else model, device=device, batch_size=batch_size)
    from datamix.embed.text import TextEncoder

    return TextEncoder(model, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code)


def read_rows(source: Source, start: int, stop: int):
    """Rows ``start:stop`` of ``source``: an (m, d) float32 array for vectors, else a list (a
    :class:`Source` has refused null and non-text rows of a text field on construction)."""
    if source.kind == "vector":
        return source.vectors(start, stop)
    return source.samples(start, stop)


def input_hash(ids: np.ndarray, rows) -> str:
    """Hash of a shard's ids and samples: a resumed shard is reused only if its input is unchanged."""
    h = hashlib.sha256()
    h.update("\0".join(map(str, ids)).encode())
    if isinstance(rows, np.ndarray):
        h.update(np.ascontiguousarray(rows).tobytes())
    else:
        for r in rows:
            h.update(r.encode("utf-8", "surrogatepass") if isinstance(r, str) else _image_bytes(r))
            h.update(b"\0")
    return h.hexdigest()


def _image_bytes(img) -> bytes:
    return img.tobytes() if hasattr(img, "tobytes") else np.asarray(img).tobytes()


class EmbedShards:
    """Shard step of the embed stage: embed one shard of one source and write its files.

    Built once per worker (the encoder is loaded then, once for all sources); each call takes shard
    tasks ``{"source", "shard", "start", "stop", "expected"}`` (``expected``: the input hash of the
    shard already listed in the manifest, or ``""``) and returns per task ``source, shard, start,
    stop, skipped, sha256, input_hash, dim``. A shard whose input rows hash to ``expected`` is
    skipped (resumed); any other is encoded and written atomically
    (:func:`~datamix.data.store.write_shard`), ready for the driver to list.

    Parameters
    ----------
    sources : dict of str to Source
    encoder : encoder or EncoderSpec
        Built here when a spec.
    stores : dict of str to path-like
        Store folder of each source (made by the driver's :class:`~datamix.data.store.StoreWriter`).
    """

    def __init__(self, sources: dict, encoder, stores: dict):
        self.sources = sources
        self.encoder = encoder.build() if isinstance(encoder, EncoderSpec) else encoder
        self.stores = {name: Path(p) for name, p in stores.items()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self.one(str(n), int(k), int(a), int(b), str(e)) for n, k, a, b, e in
                zip(batch["source"], batch["shard"], batch["start"], batch["stop"], batch["expected"])]
        return {key: np.asarray([r[key] for r in rows]) for key in rows[0]}

    def one(self, name: str, k: int, start: int, stop: int, expected: str) -> dict:
        """Embed and write shard ``k`` (rows ``start:stop``) of source ``name`` unless its input is unchanged."""
        source = self.sources[name]
        rows = read_rows(source, start, stop)
        ids = source.ids_between(start, stop)
        h = input_hash(ids, rows)
        out = {"source": name, "shard": k, "start": start, "stop": stop, "skipped": h == expected, "sha256": "",
               "ids_sha256": "", "input_hash": h, "dim": -1}
        if h != expected:
            X = self.encoder.encode(rows)
            rec = write_shard(self.stores[name], k, start, stop, ids, X, h)
            out["sha256"], out["ids_sha256"] = rec.sha256, rec.ids_sha256
            out["dim"] = int(np.shape(X)[1])
        return out


def embed(source: Source, model="auto", *, store: str | os.PathLike, batch_size: int | None = None,
          device: str = "auto", shard_size: int = 4096, overwrite: bool = False, progress: bool = True,
          trust_remote_code: bool = False, engine=None) -> EmbeddingStore:
    """Embed every sample of ``source`` into the store at ``store``; resume a compatible one.

    Shards of ``shard_size`` rows are written atomically; a run killed at any point and started
    again with the same arguments skips the finished shards and ends with exactly one embedding per
    sample id. Every engine encodes the same shards (the encoder sees one shard's rows per call,
    so padding and batches are the same), so the local and Ray engines give the same embeddings:
    bitwise for MiniLM on CPU, whose kernels do not depend on the number of threads.

    Parameters
    ----------
    source : Source
    model : str or encoder, default="auto"
        See :func:`get_encoder`; "auto" is MiniLM for text, identity for vectors, pixels for images.
        With the Ray engine a name is loaded once per actor; an encoder object is sent to the actors.
    store : path-like
        Store folder (created); it must be reachable from every worker of the engine.
    batch_size : int, optional
        Encoder batch size; default 64 on CPU and 512 on CUDA for text.
    device : {"auto", "cpu", "cuda", ...}
        Resolved where the encoder runs ("auto": CUDA when that worker sees a GPU).
    shard_size : int, default=4096
        Rows per shard (the unit of resumption, of parallel work and of memory use).
    overwrite : bool, default=False
        Start again instead of resuming.
    progress : bool, default=True
        Show a progress bar with samples/s.
    trust_remote_code : bool, default=False
        Passed to sentence-transformers; leave off unless you trust the model's code.
    engine : None, str or engine, optional
        Where the shards are embedded (see :func:`datamix.engine.get_engine`); default local.

    Returns
    -------
    EmbeddingStore
    """
    return embed_sources([source], model, stores={source.name: store}, batch_size=batch_size, device=device,
                         shard_size=shard_size, overwrite=overwrite, progress=progress,
                         trust_remote_code=trust_remote_code, engine=engine)[source.name]


def embed_sources(sources: list[Source], model="auto", *, stores: dict, batch_size: int | None = None,
                  device: str = "auto", shard_size: int = 4096, overwrite: bool = False, progress: bool = True,
                  trust_remote_code: bool = False, engine=None) -> dict[str, EmbeddingStore]:
    """Embed several sources of one kind with one encoder, in one pass of the engine.

    Same as :func:`embed` for each source (same stores, same results), but the shards of all the
    sources are one list of tasks: on Ray one actor pool, with the model loaded once per actor.

    Parameters
    ----------
    sources : list of Source
        All of one kind (text, vector or image), with distinct names.
    model : str or encoder, default="auto"
    stores : dict of str to path-like
        Store folder of each source, by source name.
    batch_size, device, shard_size, overwrite, progress, trust_remote_code, engine
        As in :func:`embed`.

    Returns
    -------
    dict of str to EmbeddingStore
    """
    from datamix.engine import get_engine

    if int(shard_size) != shard_size or shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r} must be a positive integer")
    kinds = {s.kind for s in sources}
    if len(kinds) != 1:
        raise ValueError(f"sources of several kinds {sorted(kinds)}; embed each kind with its own model")
    names = [s.name for s in sources]
    if len(set(names)) != len(names) or set(names) != set(stores):
        raise ValueError(f"stores must name each of the sources {names} once, got {sorted(stores)}")
    kind = kinds.pop()
    engine = get_engine(engine)
    if engine.name == "local" or not isinstance(model, str):
        encoder = get_encoder(model, kind=kind, device=device, batch_size=batch_size,
                              trust_remote_code=trust_remote_code)
    else:  # built on each worker, not here
        encoder = EncoderSpec(model, kind=kind, device=device, batch_size=batch_size,
                              trust_remote_code=trust_remote_code)
        _check_spec(encoder)
    writers = {s.name: StoreWriter(stores[s.name], model=encoder.name, n_total=len(s), shard_size=shard_size,
                                   meta={"source": s.name, "kind": s.kind, "origin": s.origin}, overwrite=overwrite)
               for s in sources}
    tasks = []
    for name, writer in writers.items():
        for k in range(writer.n_shards):
            start, stop = writer.bounds(k)
            rec = writer.records.get(k)
            tasks.append({"source": name, "shard": k, "start": start, "stop": stop,
                          "expected": rec.input_hash if rec else ""})
    skipped = 0
    fn_kwargs = {"sources": {s.name: s for s in sources}, "encoder": encoder,
                 "stores": {name: w.path for name, w in writers.items()}}
    desc = f"embed {names[0]}" if len(names) == 1 else f"embed {len(names)} sources"
    with tqdm(total=sum(len(s) for s in sources), unit="sample", unit_scale=True, desc=desc,
              disable=not progress) as bar:
        for row in engine.map_shards(EmbedShards, tasks, fn_kwargs=fn_kwargs, stage="embed"):
            n = int(row["stop"]) - int(row["start"])
            if row["skipped"]:
                skipped += 1
                bar.total -= n  # keep the rate about samples actually embedded
                bar.refresh()
                continue
            writers[row["source"]].register(ShardRecord(int(row["shard"]), int(row["start"]), int(row["stop"]),
                                                        str(row["sha256"]), str(row["input_hash"]),
                                                        str(row["ids_sha256"])), int(row["dim"]))
            bar.update(n)
    if skipped:
        logger.info("%s: resumed, %d of %d shards were already done", ", ".join(names), skipped, len(tasks))
    for w in writers.values():
        w.cleanup()
    return {name: w.finish() for name, w in writers.items()}


def _check_spec(spec: EncoderSpec) -> None:
    """Refuse, here, the model/kind combinations :func:`get_encoder` would refuse on a worker."""
    if spec.kind == "vector" and spec.model not in ("auto", "identity"):
        raise ValueError(f"model={spec.model!r} for vector samples: vectors pass through, use model='identity'")
    if spec.kind == "image" and spec.model not in ("auto", "pixels"):
        raise ValueError(f"model={spec.model!r} for image samples: give 'pixels' or a torch.nn.Module")
