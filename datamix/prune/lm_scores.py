"""Label-free document quality: how much more likely a document is under a target LM than under a pool LM.

The CCNet / Moore-Lewis / DSIR recipe with small transformer LMs: train one language model on the
target texts (the kind of text wanted) and one on a reference pool (by default the texts to score
themselves), then score every document by its cross-entropy difference per byte,

.. math::
    s(x) = \\frac{H_{\\text{ref}}(x) - H_{\\text{target}}(x)}{\\text{bytes}(x)}

with :math:`H` the bits of ``x`` under each model. Higher = more target-like = better, the opposite
sign of the difficulty metrics of :mod:`datamix.prune` (higher = harder): keep the top of this score.
A document the two models find equally (un)likely scores 0, so the score separates *what* a document
is like from how predictable it is (boilerplate is cheap under both models).

References
----------
Moore & Lewis 2010, "Intelligent selection of language model training data".
Wenzek et al. 2020, "CCNet: extracting high quality monolingual datasets from web crawl data".
Xie et al. 2023, "Data selection for language models via importance resampling" (DSIR).
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from datamix.index._checks import check_int, check_seed
from datamix.proxy.lm import doc_bits, train_lm
from datamix.proxy.tokenizer import Tokenizer, load_tokenizer

__all__ = ["importance_scores"]

logger = logging.getLogger(__name__)

#: Default budget per LM: 4 passes over its own tokens, at most this many tokens (about half a
#: minute per LM on two CPU cores with the default model).
MAX_DEFAULT_BUDGET = 2_000_000
_PASSES = 4
_LM_OPTIONS = ("width", "depth", "heads", "context", "batch_size", "lr", "weight_decay", "warmup", "device",
               "n_threads")
_SET_HERE = ("vocab_size", "target_bytes", "seed", "keep_model")


def importance_scores(
    texts: Sequence[str],
    target_texts: Sequence[str],
    *,
    tokenizer: str | os.PathLike | Tokenizer | None = None,
    reference_texts: Sequence[str] | None = None,
    budget: int | None = None,
    seed: int | np.random.Generator | None = 0,
    **lm_options,
) -> np.ndarray:
    """Score texts by their cross-entropy difference between a reference-pool LM and a target LM.

    Parameters
    ----------
    texts : sequence of str, length n_texts
        Documents to score; none empty.
    target_texts : sequence of str
        Examples of the wanted text; the target LM trains on them.
    tokenizer : str, path-like, Tokenizer or None, default=None
        Passed to :func:`datamix.proxy.tokenizer.load_tokenizer`; default UTF-8 bytes.
    reference_texts : sequence of str, optional
        Training texts of the reference LM; default ``texts``.
    budget : int, optional
        Tokens each LM trains on. Default: 4 passes over the LM's own tokens, at most
        ``MAX_DEFAULT_BUDGET`` (2M), at least one batch.
    seed : int or numpy Generator, default=0
        Seeds both LMs; the scores are deterministic given it (on CPU).
    **lm_options
        Model and optimiser options of :func:`datamix.proxy.lm.train_lm`: ``width``, ``depth``,
        ``heads``, ``context``, ``batch_size``, ``lr``, ``weight_decay``, ``warmup``, ``device``,
        ``n_threads``.

    Returns
    -------
    ndarray of float64, shape (n_texts,)
        Bits per UTF-8 byte saved by the target LM over the reference LM: higher = more
        target-like.

    Raises
    ------
    ValueError
        For an empty text (naming its index), an unknown or reserved option (naming it), or too
        little text to train an LM (from :func:`~datamix.proxy.lm.train_lm`).

    See Also
    --------
    datamix.proxy.lm.train_lm, datamix.proxy.lm.doc_bits

    Examples
    --------
    >>> good = ["the cat sat on the mat. "] * 40
    >>> scores = importance_scores(good[:4] + ["xq zvk wp jjy qqz fo. "] * 4, good,
    ...                            width=32, depth=1, context=32, budget=20000)
    >>> bool(scores[:4].min() > scores[4:].max())
    True
    """
    unknown = sorted(set(lm_options) - set(_LM_OPTIONS))
    if unknown:
        reserved = [k for k in unknown if k in _SET_HERE]
        if reserved:
            raise ValueError(f"option {reserved[0]!r} is set by importance_scores (from the tokenizer, the "
                             "texts and seed); drop it")
        raise ValueError(f"unknown LM option(s) {unknown}; choose from {list(_LM_OPTIONS)}")
    check_int(budget, "budget", allow_none=True)
    texts = _check_texts(texts, "texts")
    target_texts = _check_texts(target_texts, "target_texts")
    if reference_texts is not None:
        reference_texts = _check_texts(reference_texts, "reference_texts")
    tok = load_tokenizer(tokenizer)
    rng = check_seed(seed)
    seed_target, seed_ref = (int(s) for s in rng.integers(2**31 - 1, size=2))

    docs = tok.encode_batch(texts)
    target_docs = tok.encode_batch(target_texts)
    ref_docs = docs if reference_texts is None else tok.encode_batch(reference_texts)
    _check_tokens(docs, "texts")
    _check_tokens(target_docs, "target_texts")
    _check_tokens(ref_docs, "reference_texts")
    target_bytes = sum(len(t.encode("utf-8")) for t in target_texts)
    context = check_int(lm_options.get("context", 64), "context")
    one_batch = context * check_int(lm_options.get("batch_size", 16), "batch_size")
    for name, train_docs in (("target_texts", target_docs), ("reference_texts" if reference_texts else "texts",
                                                            ref_docs)):
        n_tokens = sum(d.size + 1 for d in train_docs)
        if n_tokens < context + 1:
            raise ValueError(f"{name} hold {n_tokens} tokens (with an EOS after each text), fewer than one "
                             f"training sequence of context + 1 = {context + 1}; add texts or lower context")

    def fit(train_docs, lm_seed):
        n_tokens = sum(d.size + 1 for d in train_docs)  # documents plus their EOS
        tokens = budget if budget is not None else max(min(_PASSES * n_tokens, MAX_DEFAULT_BUDGET), one_batch)
        # Both LMs are measured on the target set: the target LM's own fit, the pool LM's transfer.
        return train_lm([train_docs], [tokens], target_docs, vocab_size=tok.vocab_size,
                        target_bytes=target_bytes, seed=lm_seed, keep_model=True, **lm_options)

    target_lm = fit(target_docs, seed_target)
    ref_lm = fit(ref_docs, seed_ref)
    logger.debug("importance scores: target LM %.3f, reference LM %.3f bits/byte on the target set "
                 "(%.1f / %.1f epochs)", target_lm.bits_per_byte, ref_lm.bits_per_byte, target_lm.epochs,
                 ref_lm.epochs)
    bits_options = {k: lm_options[k] for k in ("device", "n_threads") if k in lm_options}
    bits_target = doc_bits(target_lm.model, docs, **bits_options)
    bits_ref = doc_bits(ref_lm.model, docs, **bits_options)
    n_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.float64)
    return (bits_ref - bits_target) / n_bytes


def _check_texts(texts, name: str) -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a sequence of str, got one str; wrap it in a list")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty: pass at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{i}] must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError(f"{name}[{i}] is empty; drop empty texts before scoring")
    return texts


def _check_tokens(docs, name: str) -> None:
    """A non-empty text can still encode to no tokens (a tokenizer that drops it)."""
    for i, d in enumerate(docs):
        if d.size == 0:
            raise ValueError(f"{name}[{i}] encodes to 0 tokens with this tokenizer; drop it or change tokenizer")
