"""The transformer LM proxy: known answers in bits per byte, epochs accounting, determinism, errors."""

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from datamix.proxy.lm import CausalLM, LMResult, doc_bits, train_lm

TINY = dict(width=32, depth=1, heads=4, context=32, device="cpu")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The oracles below call the model directly: one thread, as train_lm uses (two threads spin on
    a busy 2-core machine: measured 2-8 ms per tiny forward instead of 0.16 ms)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _bytes_lm(groups, seen, target, **kw):
    """train_lm on byte-level token arrays; the target's bytes are its tokens."""
    opts = {**TINY, **kw}
    return train_lm(groups, seen, target, vocab_size=256, target_bytes=sum(len(t) for t in target), **opts)


# --- known answers -------------------------------------------------------------------------------

def test_periodic_stream_is_learned_to_near_zero_bits():
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 256, 16)
    period = lambda phase, n: np.resize(np.roll(pattern, -phase), n)  # noqa: E731
    train = [period(int(p), 256) for p in rng.integers(0, 16, 8)]
    target = [period(5, 400)]  # held out: its own document, another phase
    res = _bytes_lm([train], [64 * 1024], target, lr=1e-2)
    # Observed 0.007 bits/byte (the uniform code costs 8).
    assert res.bits_per_byte < 0.1
    assert res.loss_curve[-1] < 0.1 * res.loss_curve[0]


def test_iid_random_bytes_cannot_be_beaten():
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 256, 512) for _ in range(16)]
    target = [rng.integers(0, 256, 512) for _ in range(4)]
    res = _bytes_lm([train], [16 * 1024], target)
    # Entropy of a uniform byte is 8 bits; a model of other random bytes can only do worse.
    # Observed 8.02 (the model overfits its 8k training bytes; the EOS id takes a little mass).
    assert res.bits_per_byte > 7.9
    np.testing.assert_allclose(res.loss, res.bits_per_byte * math.log(2) * 2048 / 2047)


def test_eval_matches_token_by_token_oracle():
    """bits_per_byte and loss equal a slow per-token scoring of the windows they describe."""
    rng = np.random.default_rng(2)
    train = [rng.integers(0, 8, 100) for _ in range(10)]
    # 3 documents + 3 EOS = 83 tokens: 82 predictions in windows of 32, 32 and a partial one of 18.
    target = [rng.integers(0, 8, n) for n in (30, 25, 25)]
    res = _bytes_lm([train], [4096], target, keep_model=True, context=32)
    model, eos, ctx = res.model, 256, 32
    stream = np.concatenate([np.append(t, eos) for t in target])
    bits, n_pred = 0.0, 0
    with torch.no_grad():
        for t in range(1, stream.size):
            w = ((t - 1) // ctx) * ctx  # the window that predicts token t
            logits = model(torch.as_tensor(stream[None, w:t]))[0, -1]
            if stream[t] != eos:
                bits += float(F.cross_entropy(logits[None], torch.tensor([stream[t]]))) / math.log(2)
                n_pred += 1
    np.testing.assert_allclose(res.bits_per_byte, bits / 80, rtol=1e-5)
    np.testing.assert_allclose(res.loss, bits * math.log(2) / n_pred, rtol=1e-5)
    assert n_pred == 79  # the first token is context, never predicted


def test_doc_bits_matches_token_by_token_oracle():
    rng = np.random.default_rng(3)
    train = [rng.integers(0, 8, 100) for _ in range(10)]
    res = _bytes_lm([train], [4096], [rng.integers(0, 8, 64)], keep_model=True, context=16)
    docs = [rng.integers(0, 8, n) for n in (1, 15, 16, 17, 40)] + [np.array([3, 256, 4])]
    got = doc_bits(res.model, docs)
    assert got.shape == (6,)
    eos = 256
    with torch.no_grad():
        for d, value in zip(docs, got):
            seq = np.concatenate([[eos], d])
            bits = 0.0
            for t in range(1, seq.size):
                w = ((t - 1) // 16) * 16
                logits = res.model(torch.as_tensor(seq[None, w:t]))[0, -1]
                if seq[t] != eos:
                    bits += float(F.cross_entropy(logits[None], torch.tensor([seq[t]]))) / math.log(2)
            np.testing.assert_allclose(value, bits, rtol=1e-5)
    # A shorter context scores the same documents in shorter windows.
    assert doc_bits(res.model, docs, context=8, batch_size=3).shape == (6,)
    assert doc_bits(res.model, []).shape == (0,)


def test_model_shape_and_tied_head():
    model = CausalLM(257, width=32, depth=2, heads=4, context=16)
    assert model(torch.zeros(3, 16, dtype=torch.long)).shape == (3, 16, 257)
    n_params = sum(p.numel() for p in model.parameters())
    # Embeddings 257*32 + 16*32, per block 12*32^2 + 13*32 (biases, LayerNorms), final LayerNorm 64:
    # no separate output matrix, the head is the token embedding.
    assert n_params == 257 * 32 + 16 * 32 + 2 * (12 * 32 * 32 + 13 * 32) + 64


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_is_bitwise_equal_and_another_seed_differs():
    rng = np.random.default_rng(4)
    train = [rng.integers(0, 256, 300) for _ in range(8)]
    target = [rng.integers(0, 256, 200)]
    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    a = _bytes_lm([train], [4096], target, seed=7)
    b = _bytes_lm([train], [4096], target, seed=7)
    c = _bytes_lm([train], [4096], target, seed=8)
    np.testing.assert_array_equal(a.loss_curve, b.loss_curve)
    assert a.bits_per_byte == b.bits_per_byte
    assert not np.array_equal(a.loss_curve, c.loss_curve)
    assert a.bits_per_byte != c.bits_per_byte
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert torch.get_num_threads() == threads  # and the thread setting restored
    assert a.model is None and a.loss_curve.shape == (a.steps,)
    # A numpy Generator is a seed too.
    d = _bytes_lm([train], [4096], target, seed=np.random.default_rng(7))
    assert np.isfinite(d.bits_per_byte)


# --- epochs accounting ---------------------------------------------------------------------------

def _chunks(n, ctx=32, seed=0):
    """One document that, with its EOS, makes exactly ``n`` sequences of ctx + 1 tokens."""
    return np.random.default_rng(seed).integers(0, 256, n * ctx)


def test_repeated_group_reports_epochs():
    target = [_chunks(2, seed=9)]
    res = _bytes_lm([[_chunks(10)]], [40 * 32], target)
    assert isinstance(res, LMResult)
    assert (res.seen, res.unique, res.epochs) == (1280, 320, 4.0)
    assert res.steps == math.ceil(40 / 16)
    # A budget below the pool streams a random subset once.
    res = _bytes_lm([[_chunks(10)]], [5 * 32], target, batch_size=4)
    assert (res.seen, res.unique, res.epochs, res.steps) == (160, 160, 1.0, 2)
    # Budgets round to whole sequences: 40.3 -> 40; a tiny positive budget still streams one.
    res = _bytes_lm([[_chunks(10)], [_chunks(10, seed=1)]], [1290, 1], target)
    np.testing.assert_array_equal(res.group_seen, [1280, 32])


def test_two_groups_with_different_budgets():
    target = [_chunks(2, seed=9)]
    res = _bytes_lm([[_chunks(10)], [_chunks(4, seed=1), _chunks(16, seed=2)]], [40 * 32, 10 * 32], target)
    np.testing.assert_array_equal(res.group_seen, [1280, 320])
    np.testing.assert_array_equal(res.group_unique, [320, 320])
    np.testing.assert_allclose(res.group_epochs, [4.0, 1.0])
    assert (res.seen, res.unique, res.epochs, res.steps) == (1600, 640, 2.5, 4)
    # A group without documents and without budget is allowed.
    res = _bytes_lm([[_chunks(10)], []], [16 * 32, 0], target)
    np.testing.assert_array_equal(res.group_seen, [512, 0])
    assert np.isnan(res.group_epochs[1])


# --- errors --------------------------------------------------------------------------------------

GOOD_TRAIN = [[np.arange(200) % 256]]
GOOD_TARGET = [np.arange(100) % 256]


@pytest.mark.parametrize("groups, seen, target, kw, match", [
    ([[np.arange(10)]], [1024], GOOD_TARGET, {}, r"context=32 is larger than the 10 tokens of group 0"),
    ([[np.arange(200)], [np.arange(5)]], [1024, 0], GOOD_TARGET, {}, r"context=32 .* group 1"),
    (GOOD_TRAIN, [511], GOOD_TARGET, {"batch_size": 16}, r"budget seen=511 .* 512"),
    (GOOD_TRAIN, [1024], [np.arange(20)], {}, r"target set smaller than one context"),
    ([[np.arange(50), np.array([], dtype=np.int64)]], [1024], GOOD_TARGET, {}, r"document 1 of group 0 is empty"),
    (GOOD_TRAIN, [1024], [np.arange(50), []], {}, r"document 1 of target is empty"),
    ([[np.arange(50), np.array([3, 300])]], [1024], GOOD_TARGET, {},
     r"group 0 .* token id 300 outside \[0, vocab_size=256\]"),
    ([[np.arange(50) - 1]], [1024], GOOD_TARGET, {}, r"token id -1"),
    (GOOD_TRAIN, [1024], [np.arange(50) * 7], {}, r"target .* token id"),
    ([[np.arange(200).astype(float)]], [1024], GOOD_TARGET, {}, r"int token ids"),
    (GOOD_TRAIN, [1024, 5], GOOD_TARGET, {}, r"seen must hold one int"),
    (GOOD_TRAIN, [-5], GOOD_TARGET, {}, r"seen"),
    ([[np.arange(200)], []], [1024, 64], GOOD_TARGET, {}, r"group 1 has no documents but .* seen\[1\]=64"),
    ([], [], GOOD_TARGET, {}, r"groups"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"width": 30}, r"width=30 .* heads=4"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"depth": 0}, r"depth"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"heads": -1}, r"heads"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"context": 0}, r"context"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"batch_size": 0}, r"batch_size"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"lr": 0.0}, r"lr"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"weight_decay": -1.0}, r"weight_decay"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"warmup": 1.0}, r"warmup"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"target_bytes": 0}, r"target_bytes"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"vocab_size": 0}, r"vocab_size"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"n_threads": 0}, r"n_threads"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"device": "tpu"}, r"device"),
    (GOOD_TRAIN, [1024], GOOD_TARGET, {"seed": -1}, r"seed"),
])
def test_bad_input_names_the_key(groups, seen, target, kw, match):
    opts = {**TINY, "vocab_size": 256, "target_bytes": 100, **kw}
    with pytest.raises(ValueError, match=match):
        train_lm(groups, seen, target, **opts)


def test_doc_bits_errors():
    res = _bytes_lm([[np.arange(200)]], [512], GOOD_TARGET, keep_model=True)
    with pytest.raises(ValueError, match=r"document 1 of docs is empty"):
        doc_bits(res.model, [np.arange(5), []])
    with pytest.raises(ValueError, match=r"context must be an int >= 1, <= 32"):
        doc_bits(res.model, [np.arange(5)], context=64)
    with pytest.raises(TypeError, match="CausalLM"):
        doc_bits(object(), [np.arange(5)])


# --- CUDA (bf16 autocast) ------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_known_answers_and_agreement_with_cpu():
    """On CUDA the bf16 path learns the periodic stream, cannot beat random bytes, is reproducible
    for a seed, and lands near the fp32 CPU run of the same stream."""
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 256, 16)
    train = [np.resize(np.roll(pattern, -int(p)), 256) for p in rng.integers(0, 16, 8)]
    periodic = _bytes_lm([train], [64 * 1024], [np.resize(np.roll(pattern, -5), 400)], lr=1e-2, device="cuda")
    assert periodic.bits_per_byte < 0.1
    noise = [rng.integers(0, 256, 512) for _ in range(16)]
    held_out = [rng.integers(0, 256, 512) for _ in range(4)]
    random_bytes = _bytes_lm([noise], [16 * 1024], held_out, device="cuda")
    assert random_bytes.bits_per_byte > 7.9
    source = Path(textwrap.__file__).read_bytes()  # ~20 kB of real text, the same on any machine
    text = [np.frombuffer(t, np.uint8).astype(np.int64) for t in source.split(b"\n\n") if len(t) > 40]
    a = _bytes_lm([text[:-4]], [32 * 1024], text[-4:], seed=3, device="cuda")
    b = _bytes_lm([text[:-4]], [32 * 1024], text[-4:], seed=3, device="cuda")
    cpu = _bytes_lm([text[:-4]], [32 * 1024], text[-4:], seed=3, device="cpu")
    assert abs(a.bits_per_byte - b.bits_per_byte) < 1e-3
    assert abs(a.bits_per_byte - cpu.bits_per_byte) < 0.05 * cpu.bits_per_byte
