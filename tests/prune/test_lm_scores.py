"""Label-free quality scores from a target LM and a pool LM (Moore-Lewis cross-entropy difference)."""

import numpy as np
import pytest

from datamix.prune.lm_scores import importance_scores

SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "our teacher", "a small bird"]
VERBS = ["sees", "likes", "finds", "follows", "watches", "helps"]
OBJECTS = ["the ball", "a red apple", "the green house", "her brother", "the river", "a long road"]
ADVERBS = ["today", "in the morning", "every day", "slowly", "again", "at night"]
TINY = dict(width=32, depth=1, context=32, device="cpu")


def _sentence(rng):
    return " ".join(words[rng.integers(len(words))] for words in (SUBJECTS, VERBS, OBJECTS, ADVERBS)) + "."


def _doc(rng):
    return " ".join(_sentence(rng) for _ in range(3))


def _garbage(rng):
    """A grammatical document with its characters shuffled: same letters, no words."""
    chars = list(_doc(rng))
    rng.shuffle(chars)
    return "".join(chars)


def _auc(good, bad):
    """P(score of a good document > score of a bad one)."""
    return float((good[:, None] > bad[None, :]).mean())


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    target = [_doc(rng) for _ in range(60)]
    texts = [_doc(rng) for _ in range(20)] + [_garbage(rng) for _ in range(20)]
    return texts, target


def test_garbage_scores_below_grammatical_text(planted):
    texts, target = planted
    scores = importance_scores(texts, target, seed=0, **TINY)
    assert scores.shape == (40,) and scores.dtype == np.float64
    # Observed AUC 1.0: good docs score about +0.45 bits/byte, shuffled ones about +0.2.
    assert _auc(scores[:20], scores[20:]) > 0.9
    np.testing.assert_array_equal(importance_scores(texts, target, seed=0, **TINY), scores)


def test_explicit_reference_and_budget(planted):
    texts, target = planted
    rng = np.random.default_rng(1)
    garbage_pool = [_garbage(rng) for _ in range(40)] + [_doc(rng) for _ in range(10)]
    scores = importance_scores(texts, target, reference_texts=garbage_pool, budget=20_000, seed=1,
                               tokenizer="bytes", **TINY)
    assert _auc(scores[:20], scores[20:]) > 0.9
    # Against a mostly-garbage reference, grammatical documents gain bits under the target LM.
    assert np.median(scores[:20]) > 0


def test_empty_text_names_index(planted):
    texts, target = planted
    with pytest.raises(ValueError, match=r"texts\[3\] is empty"):
        importance_scores(texts[:3] + [""] + texts[4:], target, **TINY)
    with pytest.raises(ValueError, match=r"target_texts\[0\] is empty"):
        importance_scores(texts, [""] + target, **TINY)
    with pytest.raises(ValueError, match=r"reference_texts\[1\] is empty"):
        importance_scores(texts, target, reference_texts=["abc", ""], **TINY)
    with pytest.raises(ValueError, match=r"texts\[0\] must be a str"):
        importance_scores([b"bytes"], target, **TINY)
    with pytest.raises(ValueError, match="texts must be a sequence of str"):
        importance_scores("one text", target, **TINY)


def test_bad_options_name_the_key(planted):
    texts, target = planted
    with pytest.raises(ValueError, match="'vocab_size' is set by importance_scores"):
        importance_scores(texts, target, vocab_size=100, **TINY)
    with pytest.raises(ValueError, match="widht"):
        importance_scores(texts, target, widht=32)
    with pytest.raises(ValueError, match="budget"):
        importance_scores(texts, target, budget=0, **TINY)
    with pytest.raises(ValueError, match=r"target_texts hold 6 tokens .* context \+ 1 = 33"):
        importance_scores(texts, ["short"], **TINY)
    with pytest.raises(ValueError, match=r"reference_texts hold 4 tokens"):
        importance_scores(texts, target, reference_texts=["abc"], **TINY)
