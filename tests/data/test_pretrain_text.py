"""The bundled ``pretrain_text`` scenario: unlabelled standard-library text for a byte-level LM."""

import re

import numpy as np
import pytest

from datamix.data import pretrain_text as pretrain_text_module
from datamix.data.bundled import NOISY_KINDS, load_scenario

NAMES = ["docs", "code", "reference", "web_noisy"]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("pretrain_text", seed=0)


def nbytes(texts):
    return np.array([len(t.encode()) for t in texts])


def normalised(text):
    return " ".join(text.split())


def words(text):
    return " ".join(re.findall(r"\w+", text.lower()))


def test_sources_are_unlabelled_documents_of_bounded_length(scenario):
    assert [s.name for s in scenario.sources] == NAMES
    for s in scenario.sources + [scenario.target]:
        assert s.kind == "text" and s.labels is None and s.label_field is None
        sizes = nbytes(s.samples())
        assert sizes.min() >= 100 and sizes.max() <= 2000, s.name
        assert all(t.strip() for t in s.samples())
        assert len(set(s.ids)) == len(s)
        assert s.ids[0] == f"{s.name}-00000" and s.ids[-1] == f"{s.name}-{len(s) - 1:05d}"
        # defaults: sources about 200-300 KB, target about 180 KB (the first document past the budget ends it)
        low, high = (100_000, 250_000) if s is scenario.target else (150_000, 400_000)
        assert low <= sizes.sum() <= high, (s.name, sizes.sum())
    assert scenario.source("web_noisy").dataset.column_names == ["text", "id", "quality"]


def test_each_source_holds_what_it_claims(scenario):
    docs = scenario.source("docs").samples()
    headed = np.mean([t.startswith(("module ", "class ")) or "(" in t.split("\n")[0] for t in docs])
    assert headed > 0.75  # pydoc headers; the rest continue a long docstring (observed 0.86)
    code = scenario.source("code").samples()
    assert np.mean([("def " in t) or ("class " in t) for t in code]) > 0.75  # observed 0.88: the rest
    # continue a long function
    reference = "\n".join(scenario.source("reference").samples())
    assert "*****" in reference or "=====" in reference  # the reference's section underlines


def test_deterministic_under_the_seed():
    a = load_scenario("pretrain_text", seed=3)
    pretrain_text_module._stdlib_texts.cache_clear()  # the harvest itself is deterministic too, not only cached
    b = load_scenario("pretrain_text", seed=3)
    for sa, sb in zip(a.sources + [a.target], b.sources + [b.target]):
        assert sa.samples() == sb.samples() and list(sa.ids) == list(sb.ids)
    assert a.source("web_noisy").dataset["quality"] == b.source("web_noisy").dataset["quality"]
    c = load_scenario("pretrain_text", seed=4)
    assert c.target.samples() != a.target.samples()
    for name in NAMES:
        assert c.source(name).samples() != a.source(name).samples(), name


@pytest.mark.parametrize("seed", [0, 1])
def test_no_target_document_nor_near_copy_in_a_source(seed):
    sc = load_scenario("pretrain_text", seed=seed)
    target = sc.target.samples()
    pooled = [t for s in sc.sources for t in s.samples()]
    assert not set(target) & set(pooled)
    assert not {normalised(t) for t in target} & {normalised(t) for t in pooled}
    # A near copy keeps most of the text: no 120-character stretch of a target document's words
    # (beginning, middle, end; punctuation and case dropped) occurs in any source document.
    haystack = "\n".join(words(t) for t in pooled)
    for t in map(words, target):
        for start in (0, max(0, len(t) // 2 - 60), max(0, len(t) - 120)):
            assert t[start:start + 120] not in haystack, t[start:start + 120]


def test_web_noisy_is_labelled_by_how_it_was_made(scenario):
    noisy = scenario.source("web_noisy")
    texts, quality = noisy.samples(), noisy.dataset["quality"]
    assert set(quality) == set(NOISY_KINDS)
    assert noisy.labels is None
    counts = {k: quality.count(k) for k in NOISY_KINDS}
    assert 0.2 < counts["clean"] / len(texts) < 0.4  # 30% drawn
    seen, repeats = set(), 0
    for text, kind in zip(texts, quality):
        repeats += text in seen
        assert (text in seen) == (kind == "duplicate")  # every exact duplicate is marked, and only those
        seen.add(text)
    assert repeats == counts["duplicate"] > 10
    for i in np.flatnonzero(np.array(quality) == "near_duplicate"):
        # 3-8 letters changed in an earlier document: same length, a few positions differ
        diffs = [sum(a != b for a, b in zip(texts[i], t)) for t in texts[:i] if len(t) == len(texts[i])]
        assert diffs and 1 <= min(diffs) <= 8
    boiler = [t for t, k in zip(texts, quality) if k == "boilerplate"]
    assert all("©" in t.split("\n")[-1] or "Copyright" in t.split("\n")[-1] for t in boiler)  # a footer


def test_size_scales_the_sources_not_the_target(scenario):
    half = load_scenario("pretrain_text", seed=0, size=0.5)
    for s in scenario.sources:
        small = half.source(s.name).samples()
        assert small == s.samples()[:len(small)]  # a prefix of the default draw
        ratio = nbytes(small).sum() / nbytes(s.samples()).sum()
        assert 0.48 < ratio < 0.53, (s.name, ratio)  # observed 0.500-0.505
    assert half.target.samples() == scenario.target.samples()
    small_target = load_scenario("pretrain_text", seed=0, target_size=0.5).target
    assert 0.45 < nbytes(small_target.samples()).sum() / nbytes(scenario.target.samples()).sum() < 0.55
    with pytest.raises(ValueError, match="size=0"):
        load_scenario("pretrain_text", size=0)
    with pytest.raises(ValueError, match="target_size=-1"):
        load_scenario("pretrain_text", target_size=-1)


def test_revealed_offers_and_config_options(scenario):
    sc = load_scenario("pretrain_text", seed=0, revealed=0.1)
    for s in sc.sources:
        assert s.total_size == len(scenario.source(s.name)) and len(s) == max(1, round(0.1 * s.total_size))
    assert "quality" in sc.source("web_noisy").dataset.column_names

    from datamix.config import parse_config
    from datamix.run import load_sources

    cfg = parse_config({"data": {"bundled": "pretrain_text", "options": {"size": 0.2}}})
    sources, target = load_sources(cfg, run=None)  # a bundled scenario needs no run directory
    assert [s.name for s in sources] == NAMES and len(target) == len(scenario.target)
    assert nbytes(sources[0].samples()).sum() < 0.25 * nbytes(scenario.source("docs").samples()).sum()
