"""The embedding stage: encode a source shard by shard into a resumable EmbeddingStore."""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from datamix.data.sources import Source
from datamix.data.store import EmbeddingStore, StoreWriter

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


def get_encoder(model="auto", *, kind: str = "text", device: str = "auto", batch_size: int | None = None,
                trust_remote_code: bool = False) -> Encoder:
    """Return an encoder for ``kind`` samples.

    ``model`` is an encoder object (anything with ``name`` and ``encode``), or a name: for text
    ``"minilm"`` (the bundled all-MiniLM-L6-v2) or any sentence-transformers model name or path; for
    vectors ``"identity"``; for images ``"pixels"`` or a ``torch.nn.Module``.
    """
    if not isinstance(model, str) and hasattr(model, "encode") and hasattr(model, "name"):
        return model
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
    """Rows ``start:stop`` of ``source``, checked: an (m, d) float32 array for vectors, else a list."""
    if source.kind == "vector":
        return source.vectors(start, stop)
    rows = source.samples(start, stop)
    if source.kind == "text":
        for i, t in enumerate(rows):
            if not isinstance(t, str):
                raise ValueError(f"source {source.name!r} ({source.origin}): field {source.field!r} row "
                                 f"{start + i} is {type(t).__name__} {t!r}, expected text")
    return rows


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


def embed(source: Source, model="auto", *, store: str | os.PathLike, batch_size: int | None = None,
          device: str = "auto", shard_size: int = 4096, overwrite: bool = False, progress: bool = True,
          trust_remote_code: bool = False) -> EmbeddingStore:
    """Embed every sample of ``source`` into the store at ``store``; resume a compatible one.

    Shards of ``shard_size`` rows are written atomically; a run killed at any point and started
    again with the same arguments skips the finished shards and ends with exactly one embedding per
    sample id.

    Parameters
    ----------
    source : Source
    model : str or encoder, default="auto"
        See :func:`get_encoder`; "auto" is MiniLM for text, identity for vectors, pixels for images.
    store : path-like
        Store folder (created).
    batch_size : int, optional
        Encoder batch size; default 64 on CPU and 512 on CUDA for text.
    device : {"auto", "cpu", "cuda", ...}
    shard_size : int, default=4096
        Rows per shard (the unit of resumption and of memory use).
    overwrite : bool, default=False
        Start again instead of resuming.
    progress : bool, default=True
        Show a progress bar with samples/s.
    trust_remote_code : bool, default=False
        Passed to sentence-transformers; leave off unless you trust the model's code.

    Returns
    -------
    EmbeddingStore
    """
    if int(shard_size) != shard_size or shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r} must be a positive integer")
    encoder = get_encoder(model, kind=source.kind, device=device, batch_size=batch_size,
                          trust_remote_code=trust_remote_code)
    writer = StoreWriter(store, model=encoder.name, n_total=len(source), shard_size=shard_size,
                         meta={"source": source.name, "kind": source.kind, "origin": source.origin},
                         overwrite=overwrite)
    skipped = 0
    with tqdm(total=len(source), unit="sample", unit_scale=True, desc=f"embed {source.name}",
              disable=not progress) as bar:
        for k in range(writer.n_shards):
            start, stop = writer.bounds(k)
            rows = read_rows(source, start, stop)
            ids = source.ids_between(start, stop)
            h = input_hash(ids, rows)
            if writer.done(k, h):
                skipped += 1
                bar.total -= stop - start  # keep the rate about samples actually embedded
                bar.refresh()
                continue
            writer.write(k, ids, encoder.encode(rows), h)
            bar.update(stop - start)
    if skipped:
        logger.info("%s: resumed, %d of %d shards were already done", store, skipped, writer.n_shards)
    return writer.finish()
