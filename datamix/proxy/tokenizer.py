"""Tokenizers for the language-model proxy: raw UTF-8 bytes, or a local Hugging Face tokenizer file.

The proxy measures bits per byte, so any tokenizer works: the byte-level one (ids 0..255) needs
nothing, and a ``tokenizer.json`` saved by the Hugging Face ``tokenizers`` library is loaded from
disk (never downloaded). Every tokenizer reserves one more id, ``eos_id == vocab_size``, for the
separator the proxy appends after every document.

A tokenizer's :attr:`Tokenizer.signature` names it by content (the SHA-256 of its file), so that
runs trained with another tokenizer are never taken for runs of this one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Tokenizer", "load_tokenizer"]

_BYTES = "bytes"


class Tokenizer:
    """Text to token ids, with one extra id reserved for the end-of-document separator.

    Build one with :func:`load_tokenizer`.

    Attributes
    ----------
    name : str
        ``"bytes"``, or the path of the tokenizer file.
    vocab_size : int
        Ids of encoded text lie in ``[0, vocab_size)``.
    eos_id : int
        ``vocab_size``: the document separator, never produced by :meth:`encode`.
    signature : str
        ``"bytes"``, or ``"tokenizer:<file name>@<first 12 hex of the file's SHA-256>"``.
    """

    def __init__(self, *, name: str, vocab_size: int, signature: str, backend=None):
        self.name = name
        self.vocab_size = int(vocab_size)
        self.signature = signature
        self._backend = backend  # a tokenizers.Tokenizer, or None for bytes

    @property
    def eos_id(self) -> int:
        """Id of the document separator: one past the tokenizer's own ids."""
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size}, signature={self.signature!r})"

    def encode(self, text: str) -> np.ndarray:
        """Token ids of one text, no special tokens added.

        Parameters
        ----------
        text : str

        Returns
        -------
        ndarray of int32, shape (n_tokens,)
            Ids in ``[0, vocab_size)``; for bytes, the UTF-8 bytes of ``text``.
        """
        _check_text(text, "text")
        if self._backend is None:
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
        return np.asarray(self._backend.encode(text, add_special_tokens=False).ids, dtype=np.int32)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of many texts (the Hugging Face backend encodes them in parallel).

        Parameters
        ----------
        texts : sequence of str, length n_texts

        Returns
        -------
        list of ndarray of int32
            One array of ids per text, as :meth:`encode` gives.
        """
        texts = list(texts)
        for i, text in enumerate(texts):
            _check_text(text, f"texts[{i}]")
        if self._backend is None:
            return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int32) for t in texts]
        encodings = self._backend.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]

    def count(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text.

        Returns
        -------
        ndarray of int64, shape (n_texts,)
        """
        texts = list(texts)
        if self._backend is None:
            for i, text in enumerate(texts):
                _check_text(text, f"texts[{i}]")
            return np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
        return np.array([ids.size for ids in self.encode_batch(texts)], dtype=np.int64)

    def decode(self, ids) -> str:
        """Text of token ids; the separator ``eos_id`` is skipped.

        Bytes that do not form valid UTF-8 are replaced by U+FFFD.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        ids = ids[(ids >= 0) & (ids < self.vocab_size)]
        if self._backend is None:
            return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
        return self._backend.decode(ids.tolist())


def load_tokenizer(spec: str | os.PathLike | Tokenizer | None = None) -> Tokenizer:
    """The byte-level tokenizer, or a Hugging Face tokenizer read from a local file.

    Parameters
    ----------
    spec : str, path-like, Tokenizer or None, default=None
        ``None`` or ``"bytes"``: UTF-8 bytes (ids 0..255, ``vocab_size=256``). Otherwise the path
        of a ``tokenizer.json`` written by the ``tokenizers`` library (``Tokenizer.save``), or of a
        folder holding one. Nothing is ever downloaded. A :class:`Tokenizer` is returned as is.

    Returns
    -------
    Tokenizer

    Raises
    ------
    FileNotFoundError
        If the path does not exist (the message names it).
    ValueError
        If the file cannot be read as a tokenizer (the message names it).

    Examples
    --------
    >>> tok = load_tokenizer()
    >>> tok.encode("hé").tolist(), tok.vocab_size, tok.eos_id
    ([104, 195, 169], 256, 256)
    """
    if isinstance(spec, Tokenizer):
        return spec
    if spec is None or (isinstance(spec, str) and spec == _BYTES):
        return Tokenizer(name=_BYTES, vocab_size=256, signature=_BYTES)
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"tokenizer must be None, 'bytes' or the path of a tokenizer.json file, "
                        f"got {type(spec).__name__}")
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} not found: pass 'bytes' or the path of a "
                                "local tokenizer.json (nothing is downloaded)")
    import tokenizers  # heavy; only needed for a file

    data = path.read_bytes()
    try:
        backend = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # the Rust side raises a bare Exception for any malformed file
        raise ValueError(f"{str(path)!r} is not a Hugging Face tokenizer file (tokenizer.json): "
                         f"{str(exc)[:200]}") from exc
    vocab = backend.get_vocab(with_added_tokens=True)
    if not vocab:
        raise ValueError(f"tokenizer {str(path)!r} has an empty vocabulary")
    # Ids may leave holes; every id must still fall below vocab_size.
    vocab_size = max(backend.get_vocab_size(with_added_tokens=True), max(vocab.values()) + 1)
    signature = f"tokenizer:{path.name}@{hashlib.sha256(data).hexdigest()[:12]}"
    return Tokenizer(name=str(path), vocab_size=vocab_size, signature=signature, backend=backend)


def _check_text(text, name: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
