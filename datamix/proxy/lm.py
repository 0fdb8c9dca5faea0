"""A small causal transformer language model as a proxy, trained compute-bound and scored in bits per byte.

The model is GPT-2 in miniature: token and learned position embeddings, ``depth`` pre-LayerNorm
blocks (causal self-attention, a 4x GELU MLP), a final LayerNorm and an output head tied to the
token embedding; no dropout. Token id ``vocab_size`` is the end-of-document separator (EOS).

Training follows pretraining: every group (source) of documents is one token stream, the documents
joined with an EOS after each, cut into sequences of ``context + 1`` tokens (consecutive sequences
share one token, so every token is predicted once per pass). A run spends a budget of tokens per
group, streaming each group's sequences as often as its budget asks
(:func:`datamix.proxy.stream.mixture_stream`) under one warm-up + cosine schedule that ends at the
budget (:func:`datamix.proxy.stream.lr_schedule`). The result is the cross-entropy on a target set
in bits per UTF-8 byte, comparable across tokenizers.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from datamix.index._checks import check_int, check_seed
from datamix.proxy.stream import lr_schedule, mixture_stream
from datamix.proxy.trainer import _torch_device

__all__ = ["CausalLM", "LMResult", "doc_bits", "train_lm"]

logger = logging.getLogger(__name__)

_EVAL_BATCH = 64
_LN2 = math.log(2.0)


class CausalLM(nn.Module):
    """GPT-style decoder: pre-LayerNorm blocks with causal self-attention, tied output head.

    Parameters
    ----------
    n_tokens : int
        Rows of the embedding: the tokenizer's ``vocab_size + 1`` (EOS).
    width, depth, heads, context : int
        Model width, blocks, attention heads (``width % heads == 0``), longest input.
    """

    def __init__(self, n_tokens: int, *, width: int, depth: int, heads: int, context: int):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(n_tokens, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        # GPT-2 initialisation: N(0, 0.02), residual projections scaled down by sqrt(2 depth).
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.proj, block.down):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * depth))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next token, shape (batch, T, n_tokens), for ids of shape (batch, T <= context)."""
        x = self.tok(idx) + self.pos.weight[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.tok.weight.T


class _Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, w))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


@dataclass(frozen=True)
class LMResult:
    """Outcome of :func:`train_lm`.

    Attributes
    ----------
    bits_per_byte : float
        Cross-entropy of the target set in bits per UTF-8 byte (EOS predictions excluded).
    loss : float
        Mean cross-entropy on the target set in nats per predicted (non-EOS) token.
    seen : int
        Tokens trained on: sequences streamed times ``context``.
    unique : int
        Distinct tokens among them: distinct sequences streamed times ``context``.
    steps : int
        Optimiser steps.
    loss_curve : ndarray of float64, shape (steps,)
        Mean training loss (nats per token) of every step.
    wall_s : float
        Seconds the call took (training and evaluation).
    model : CausalLM or None
        The trained model in eval mode, on its training device, when ``keep_model=True``.
    group_seen : ndarray of int64, shape (n_groups,)
        ``seen`` of every group, in tokens.
    group_unique : ndarray of int64, shape (n_groups,)
        ``unique`` of every group, in tokens.
    """

    bits_per_byte: float
    loss: float
    seen: int
    unique: int
    steps: int
    loss_curve: np.ndarray
    wall_s: float
    model: CausalLM | None = None
    group_seen: np.ndarray | None = None
    group_unique: np.ndarray | None = None

    @property
    def epochs(self) -> float:
        """Passes over the unique data: ``seen / unique``."""
        return self.seen / self.unique if self.unique else float("nan")

    @property
    def group_epochs(self) -> np.ndarray:
        """Passes over every group's unique data, shape (n_groups,) (NaN for a group not trained on)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.group_unique > 0, self.group_seen / np.maximum(self.group_unique, 1), np.nan)


def train_lm(
    groups: Sequence[Sequence[np.ndarray]],
    seen: Sequence[int] | int,
    target: Sequence[np.ndarray],
    *,
    vocab_size: int,
    target_bytes: int,
    width: int = 64,
    depth: int = 2,
    heads: int = 4,
    context: int = 64,
    batch_size: int = 16,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    warmup: float = 0.05,
    seed: int | np.random.Generator | None = 0,
    device: str = "auto",
    n_threads: int | None = 1,
    keep_model: bool = False,
) -> LMResult:
    """Train a small causal transformer on a token budget per group and score a target set in bits per byte.

    Minimises the next-token cross-entropy with AdamW (betas 0.9, 0.95, gradient norm clipped at
    1) over ``ceil(S / batch_size)`` steps, ``S`` the sequences streamed, and reports

    .. math::
        \\text{bits per byte} = \\frac{1}{B}
        \\sum_{t:\\, x_t \\neq \\text{EOS}} -\\log_2 p_\\theta(x_t \\mid x_{<t})

    on the target stream, ``B = target_bytes``.

    Parameters
    ----------
    groups : sequence of sequences of 1-D int arrays
        One entry per group (source); each a sequence of tokenized documents, ids in
        ``[0, vocab_size]``. A group's documents are joined with EOS (``vocab_size``) after each
        and cut into ``(len - 1) // context`` sequences of ``context + 1`` tokens, stride
        ``context``: the group's unique units. A group may be empty when its budget is 0.
    seen : sequence of int, shape (n_groups,), or int for one group
        Tokens to train on from every group (the run's budget split by the mixture). Group g
        streams ``round(seen[g] / context)`` sequences (at least 1 when ``seen[g] > 0``), repeating
        its sequences as needed, each pass a fresh permutation; groups interleave evenly.
    target : sequence of 1-D int arrays
        Tokenized target documents (same tokenizer), joined with EOS and scored in non-overlapping
        windows of ``context`` predicted tokens; predictions of EOS are not counted.
    vocab_size : int
        The tokenizer's vocabulary; the model has ``vocab_size + 1`` embeddings (EOS).
    target_bytes : int
        UTF-8 bytes of the target texts: the denominator of bits per byte.
    width : int, default=64
    depth : int, default=2
        Transformer blocks.
    heads : int, default=4
        Attention heads; must divide ``width``.
    context : int, default=64
        Tokens of context (predicted tokens per training sequence).
    batch_size : int, default=16
        Sequences per step; the last step may have fewer.
    lr : float, default=3e-3
        Peak AdamW learning rate; warm-up, then cosine decay to 0.1 ``lr`` at the last step.
    weight_decay : float, default=0.0
        AdamW decay of the weight matrices and embeddings (not of biases and LayerNorms).
    warmup : float, default=0.05
        Share of the steps warming up.
    seed : int or numpy Generator, default=0
        Seeds the initialisation and the streaming order; the global torch RNG is left untouched.
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` uses CUDA when torch sees a GPU; on CUDA the forward runs under bfloat16 autocast.
    n_threads : int or None, default=1
        CPU threads torch may use during the call (restored after); ``None`` leaves it alone.
        Results are bitwise reproducible on CPU for a given ``n_threads``.
    keep_model : bool, default=False
        Return the trained model in :attr:`LMResult.model` (else None).

    Returns
    -------
    LMResult

    Raises
    ------
    ValueError
        For an empty document, ids outside ``[0, vocab_size]``, a group too short for one
        sequence, a budget below one batch, a target shorter than one sequence, or bad
        hyper-parameters; the message names the argument.

    See Also
    --------
    doc_bits : bits of every document under a model kept with ``keep_model=True``.

    Examples
    --------
    >>> doc = np.tile(np.arange(8), 64)  # 512 bytes of a period-8 pattern: 16 sequences of 32
    >>> res = train_lm([[doc]], [32768], [doc[:200]], vocab_size=256, target_bytes=200,
    ...                width=32, depth=1, context=32, lr=1e-2, device="cpu")
    >>> bool(res.bits_per_byte < 0.1), res.epochs
    (True, 64.0)
    """
    t0 = time.perf_counter()
    vocab_size = check_int(vocab_size, "vocab_size")
    for name, value in (("width", width), ("depth", depth), ("heads", heads), ("context", context),
                        ("batch_size", batch_size)):
        check_int(value, name)
    check_int(n_threads, "n_threads", allow_none=True)
    if width % heads:
        raise ValueError(f"width={width} must be a multiple of heads={heads}")
    if not (isinstance(lr, numbers.Real) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not (isinstance(weight_decay, numbers.Real) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not (isinstance(warmup, numbers.Real) and 0 <= warmup < 1):
        raise ValueError(f"warmup must be in [0, 1), got {warmup!r}")
    if isinstance(target_bytes, bool) or not (isinstance(target_bytes, numbers.Real) and target_bytes > 0):
        raise ValueError(f"target_bytes must be > 0 (UTF-8 bytes of the target texts), got {target_bytes!r}")
    dev = _torch_device(device)
    rng = check_seed(seed)

    streams = []
    for g, docs in enumerate(_as_list(groups, "groups")):
        streams.append(_join(docs, vocab_size, where=f"group {g}") if len(docs) else np.zeros(0, np.int64))
    if not streams:
        raise ValueError("groups is empty: pass one sequence of documents per group")
    seen = _check_seen(seen, len(streams))
    n_chunks = np.array([max(0, (s.size - 1) // context) for s in streams], dtype=np.int64)
    for g, s in enumerate(streams):
        if s.size and n_chunks[g] == 0:
            raise ValueError(f"context={context} is larger than the {s.size - 1} tokens of group {g}: one "
                             f"training sequence needs context + 1 = {context + 1} tokens (documents plus "
                             "an EOS after each); lower context or add documents")
        if not s.size and seen[g] > 0:
            raise ValueError(f"group {g} has no documents but a budget of seen[{g}]={seen[g]} tokens")
    if seen.sum() < batch_size * context:
        raise ValueError(f"budget seen={int(seen.sum())} tokens is smaller than one batch of "
                         f"batch_size * context = {batch_size * context} tokens; raise seen or lower batch_size")
    target_stream = _join(_as_list(target, "target"), vocab_size, where="target")
    if target_stream.size < context + 1:
        raise ValueError(f"target set smaller than one context: {target_stream.size} tokens (documents plus "
                         f"an EOS after each) < context + 1 = {context + 1}; lower context or add target "
                         "documents")
    # Round half up; a group with any budget streams at least one sequence.
    to_stream = np.where(seen > 0, np.maximum(1, (seen + context // 2) // context), 0)

    torch_seed = int(rng.integers(2**31 - 1))
    order = mixture_stream(n_chunks, to_stream, seed=rng)
    offsets = np.concatenate([[0], np.cumsum([s.size for s in streams])[:-1]])
    starts = np.concatenate([off + np.arange(n) * context for off, n in zip(offsets, n_chunks)])
    unit_group = np.repeat(np.arange(len(streams)), n_chunks)
    distinct = np.unique(order)
    group_seen = np.bincount(unit_group[order], minlength=len(streams)) * context
    group_unique = np.bincount(unit_group[distinct], minlength=len(streams)) * context

    previous_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        model, loss_curve = _train_impl(
            np.concatenate(streams), starts[order], vocab_size=vocab_size, width=width, depth=depth,
            heads=heads, context=context, batch_size=batch_size, lr=float(lr),
            weight_decay=float(weight_decay), warmup=float(warmup), torch_seed=torch_seed, device=dev)
        bits, n_pred = _stream_bits(model, target_stream, vocab_size, context, _EVAL_BATCH, dev)
    finally:
        torch.set_num_threads(previous_threads)
    total_bits = float(bits.sum())
    result = LMResult(
        bits_per_byte=total_bits / float(target_bytes),
        loss=total_bits * _LN2 / n_pred if n_pred else float("nan"),
        seen=int(order.size) * context,
        unique=int(distinct.size) * context,
        steps=int(loss_curve.size),
        loss_curve=loss_curve,
        wall_s=time.perf_counter() - t0,
        model=model if keep_model else None,
        group_seen=group_seen.astype(np.int64),
        group_unique=group_unique.astype(np.int64),
    )
    logger.debug("lm proxy: %d steps, %d tokens seen (%.2f epochs), %.4f bits/byte, %.1f s", result.steps,
                 result.seen, result.epochs, result.bits_per_byte, result.wall_s)
    return result


def doc_bits(
    model: CausalLM,
    docs: Sequence[np.ndarray],
    *,
    context: int | None = None,
    batch_size: int = _EVAL_BATCH,
    device: str = "auto",
    n_threads: int | None = 1,
) -> np.ndarray:
    """Total bits of every document under a trained model.

    Each document is preceded by EOS (its first context token, as after a previous document in
    training) and scored in non-overlapping windows of ``context`` predicted tokens: a token sees
    the tokens before it in its window only. Predictions of EOS are not counted.

    Parameters
    ----------
    model : CausalLM
        From ``train_lm(..., keep_model=True).model``.
    docs : sequence of 1-D int arrays, length n_docs
        Tokenized documents (the model's tokenizer), ids in ``[0, vocab_size]``, none empty.
    context : int, optional
        Window length; default and maximum: the model's context.
    batch_size : int, default=64
        Windows per forward pass.
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` keeps the model where it is; otherwise the model is moved there (in place).
    n_threads : int or None, default=1
        CPU threads torch may use during the call (restored after).

    Returns
    -------
    ndarray of float64, shape (n_docs,)
        :math:`\\sum_t -\\log_2 p(x_t \\mid \\text{window before } t)` of every document.
    """
    if not isinstance(model, CausalLM):
        raise TypeError(f"model must be a CausalLM (train_lm(..., keep_model=True).model), got "
                        f"{type(model).__name__}")
    vocab_size = model.tok.num_embeddings - 1
    context = model.context if context is None else check_int(context, "context", high=model.context)
    check_int(batch_size, "batch_size")
    check_int(n_threads, "n_threads", allow_none=True)
    if device == "auto":
        dev = next(model.parameters()).device
    else:
        dev = _torch_device(device)
        model.to(dev)
    docs = _as_list(docs, "docs")
    if not docs:
        return np.zeros(0)
    checked = [_check_doc(d, vocab_size, where="docs", i=i) for i, d in enumerate(docs)]
    # One window of context + 1 tokens per `context` predicted tokens of every [EOS, *doc].
    lengths = np.array([d.size for d in checked], dtype=np.int64)
    n_win = -(-lengths // context)
    windows = np.full((int(n_win.sum()), context + 1), vocab_size, dtype=np.int64)
    row = 0
    for d in checked:
        seq = np.concatenate([[vocab_size], d])
        for start in range(0, d.size, context):
            piece = seq[start:start + context + 1]
            windows[row, :piece.size] = piece
            row += 1
    previous_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        bits = _window_bits(model, windows, vocab_size, batch_size, dev)
    finally:
        torch.set_num_threads(previous_threads)
    return np.bincount(np.repeat(np.arange(len(checked)), n_win), weights=bits, minlength=len(checked))


def _train_impl(stream, starts, *, vocab_size, width, depth, heads, context, batch_size, lr, weight_decay,
                warmup, torch_seed, device):
    """Training loop on clean input: ``stream`` the joined int64 tokens of all groups, ``starts`` the
    first token of every sequence in visiting order. Returns (model in eval mode, step losses)."""
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(torch_seed)
        model = CausalLM(vocab_size + 1, width=width, depth=depth, heads=heads, context=context)
    model = model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    n_steps = math.ceil(starts.size / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(n_steps, warmup=warmup))
    tokens = torch.as_tensor(stream, dtype=torch.long, device=device)
    starts_t = torch.as_tensor(starts, dtype=torch.long, device=device)
    span = torch.arange(context + 1, device=device)
    losses = torch.empty(n_steps, device=device)  # filled on the device: no sync per step on CUDA
    cuda = device.type == "cuda"
    model.train()
    for step in range(n_steps):
        batch = tokens[starts_t[step * batch_size:(step + 1) * batch_size, None] + span]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, vocab_size + 1), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses[step] = loss.detach()
    model.eval()
    return model, losses.double().cpu().numpy()


def _stream_bits(model, stream, vocab_size, context, batch_size, device):
    """(bits of every window, predicted non-EOS tokens) of a joined token stream scored in
    non-overlapping windows of ``context`` predictions; the last window is padded with EOS."""
    n_win = -(-(stream.size - 1) // context)
    padded = np.full(n_win * context + 1, vocab_size, dtype=np.int64)
    padded[:stream.size] = stream
    windows = np.lib.stride_tricks.sliding_window_view(padded, context + 1)[::context]
    return _window_bits(model, windows, vocab_size, batch_size, device), int((stream[1:] != vocab_size).sum())


@torch.no_grad()
def _window_bits(model, windows, vocab_size, batch_size, device):
    """Bits of every row of ``windows`` (n, T + 1): its last T tokens predicted from the ones before,
    targets equal to EOS not counted. Returns float64 of shape (n,)."""
    model.eval()
    out = np.empty(windows.shape[0])
    cuda = device.type == "cuda"
    for lo in range(0, windows.shape[0], batch_size):
        batch = torch.from_numpy(np.array(windows[lo:lo + batch_size], dtype=np.int64)).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(batch[:, :-1])
        y = batch[:, 1:]
        nats = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
        nats = torch.where(y == vocab_size, torch.zeros_like(nats), nats)
        out[lo:lo + batch.shape[0]] = nats.double().sum(dim=1).cpu().numpy() / _LN2
    return out


def _as_list(value, name):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise ValueError(f"{name} must be a sequence of token-id arrays, got {type(value).__name__}")
    return list(value)


def _check_doc(doc, vocab_size, *, where, i):
    """One document as a 1-D int64 array with ids in [0, vocab_size], not empty."""
    arr = np.asarray(doc)
    if arr.size == 0:
        raise ValueError(f"document {i} of {where} is empty (0 tokens); drop empty documents first")
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"document {i} of {where} must be a 1-D array of int token ids, got shape "
                         f"{arr.shape} and dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"document {i} of {where} has token id {bad} outside [0, vocab_size={vocab_size}] "
                         "(vocab_size itself is EOS); was it encoded with another tokenizer?")
    return arr.astype(np.int64, copy=False)


def _join(docs, vocab_size, *, where):
    """Documents joined into one int64 stream with an EOS (``vocab_size``) after each."""
    eos = np.array([vocab_size], dtype=np.int64)
    parts = []
    for i, doc in enumerate(docs):
        parts.append(_check_doc(doc, vocab_size, where=where, i=i))
        parts.append(eos)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _check_seen(seen, n_groups):
    if isinstance(seen, numbers.Integral) and not isinstance(seen, bool) and n_groups == 1:
        seen = [seen]
    arr = np.asarray(seen)
    if arr.shape != (n_groups,) or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0) or (arr < 0).any():
        raise ValueError(f"seen must hold one int >= 0 (tokens) per group ({n_groups} groups), got "
                         f"{np.asarray(seen).tolist()!r}")
    return arr.astype(np.int64)

