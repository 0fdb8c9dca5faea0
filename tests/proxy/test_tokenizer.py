"""Byte-level and Hugging Face file tokenizers of the LM proxy."""

import json
import re

import numpy as np
import pytest

from datamix.proxy.lm import train_lm
from datamix.proxy.tokenizer import Tokenizer, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog met on the road",
    "the bird sang in the tree",
] * 3


def _word_level(path, corpus=CORPUS, special=("[UNK]", "[BOS]")):
    """A tiny WordLevel tokenizer trained on ``corpus``, with a post-processor that adds [BOS]."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, processors, trainers

    tok = HFTokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=list(special)))
    bos = tok.token_to_id("[BOS]")
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", bos)])
    tok.save(str(path))
    return tok


def _word_level_path(tmp_path):
    path = tmp_path / "tokenizer.json"
    _word_level(path)
    return path


def test_bytes_round_trip_non_ascii():
    tok = load_tokenizer()
    text = "héllo wörld — 日本語 🙂"
    ids = tok.encode(text)
    assert ids.dtype == np.int32
    assert ids.tolist() == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert (tok.vocab_size, tok.eos_id, tok.signature, tok.name) == (256, 256, "bytes", "bytes")
    assert load_tokenizer("bytes").signature == "bytes"
    assert load_tokenizer(tok) is tok
    np.testing.assert_array_equal(tok.count([text, "ab", "é"]), [len(text.encode("utf-8")), 2, 2])
    batch = tok.encode_batch([text, "x"])
    np.testing.assert_array_equal(batch[0], ids)
    assert batch[1].tolist() == [120]


def test_bytes_rejects_non_str():
    tok = load_tokenizer()
    with pytest.raises(TypeError, match="text"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok.encode_batch(["ok", 3])


def test_hf_file_vocab_ids_and_no_special_tokens(tmp_path):
    path = tmp_path / "tokenizer.json"
    hf = _word_level(path)
    tok = load_tokenizer(path)
    assert isinstance(tok, Tokenizer)
    assert tok.vocab_size == hf.get_vocab_size() == len(hf.get_vocab())
    assert tok.eos_id == tok.vocab_size
    text = "the cat sat on the log"
    ids = tok.encode(text)
    assert ids.dtype == np.int32
    # The file's post-processor prepends [BOS]; the proxy's encode adds no special token.
    assert hf.encode(text).ids[0] == hf.token_to_id("[BOS]")
    assert ids.tolist() == hf.encode(text, add_special_tokens=False).ids
    assert ids.tolist() == [hf.token_to_id(w) for w in text.split()]
    assert ((ids >= 0) & (ids < tok.vocab_size)).all()
    batch = tok.encode_batch([text, "the bird"])
    np.testing.assert_array_equal(batch[0], ids)
    np.testing.assert_array_equal(tok.count([text, "the bird", "zebra zebra"]), [6, 2, 2])
    assert tok.decode(ids) == text
    # A folder holding tokenizer.json loads the same file.
    assert load_tokenizer(tmp_path).signature == tok.signature


def test_signature_names_file_and_content(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    _word_level(a / "tokenizer.json")
    _word_level(b / "tokenizer.json", corpus=CORPUS + ["zebras eat grass"])
    (c / "tokenizer.json").write_bytes((a / "tokenizer.json").read_bytes())
    sig_a = load_tokenizer(a / "tokenizer.json").signature
    assert re.fullmatch(r"tokenizer:tokenizer\.json@[0-9a-f]{12}", sig_a)
    assert load_tokenizer(b / "tokenizer.json").signature != sig_a
    assert load_tokenizer(c / "tokenizer.json").signature == sig_a  # same bytes, same signature
    assert sig_a != load_tokenizer().signature


def test_train_lm_with_hf_tokenizer(tmp_path):
    tok = load_tokenizer(_word_level_path(tmp_path))
    docs = tok.encode_batch(CORPUS * 4)
    target_texts = CORPUS[:4]
    target = tok.encode_batch(target_texts)
    res = train_lm([docs], [2048], target, vocab_size=tok.vocab_size,
                   target_bytes=sum(len(t.encode()) for t in target_texts), width=32, depth=1,
                   context=16, batch_size=8, seed=0, device="cpu")
    assert res.steps == 16
    assert np.isfinite(res.bits_per_byte) and res.bits_per_byte > 0
    # A memorisable word-level corpus: the LM beats the uniform code over its vocabulary.
    n_words = sum(t.size for t in target)
    uniform = n_words * np.log2(tok.vocab_size + 1) / sum(len(t.encode()) for t in target_texts)
    assert res.bits_per_byte < uniform


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(FileNotFoundError, match=f"tokenizer.*{re.escape(str(path))}"):
        load_tokenizer(path)
    with pytest.raises(FileNotFoundError, match="tokenizer file 'gpt2'"):
        load_tokenizer("gpt2")  # a hub name is not downloaded


@pytest.mark.parametrize("content", [json.dumps({"vocab": [1, 2, 3]}).encode(), bytes(range(256)) * 4, b""])
def test_not_a_tokenizer_names_path(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_tokenizer(path)


def test_bad_spec_type():
    with pytest.raises(TypeError, match="tokenizer"):
        load_tokenizer(3)
