import numpy as np
import pytest

from datamix.data.bundled import load_scenario


def test_digits_sources_are_what_they_claim():
    sc = load_scenario("digits", seed=0)
    sizes = {s.name: len(s) for s in sc.sources}
    assert sizes == {"clean": 1000, "noisy_labels": 1500, "corrupted": 1500, "near_dup": 1500, "skewed": 1000}
    assert len(sc.target) == 540
    target = {v.tobytes() for v in sc.target.vectors()}
    for s in sc.sources:
        assert not target & {v.tobytes() for v in s.vectors()}, f"{s.name} leaks target images"
    skew = np.bincount(sc.source("skewed").labels, minlength=10)
    assert skew[:3].sum() / skew.sum() == pytest.approx(0.6, abs=0.05)  # 3 of 10 classes hold 60%
    dup = sc.source("near_dup").vectors()
    groups = dup.reshape(150, 10, 64)  # 150 images, ten faint copies each (noise sd 0.01)
    assert np.abs(groups - groups.mean(axis=1, keepdims=True)).max() < 0.06
    corrupted = sc.source("corrupted").vectors()
    assert ((corrupted > 0) & (corrupted < 1 / 16)).mean() > 0.01  # noise values no real pixel has


def test_digits_label_noise_rate():
    sc = load_scenario("digits", seed=0)
    clean = sc.source("clean")
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(1).fit(clean.vectors(), clean.labels)
    noisy = sc.source("noisy_labels")
    disagree = (knn.predict(noisy.vectors()) != noisy.labels).mean()
    assert 0.35 < disagree < 0.5  # 40% flipped, plus the 1-NN's own few percent of errors


def test_scenarios_are_deterministic_under_the_seed():
    a, b = load_scenario("digits", seed=1), load_scenario("digits", seed=1)
    np.testing.assert_array_equal(a.source("clean").vectors(), b.source("clean").vectors())
    c = load_scenario("digits", seed=2)
    assert not np.array_equal(a.source("clean").vectors(), c.source("clean").vectors())


def test_revealed_offers():
    sc = load_scenario("digits", seed=0, revealed=0.1)
    assert [(len(s), s.total_size) for s in sc.sources] == [(100, 1000), (150, 1500), (150, 1500), (150, 1500), (100, 1000)]
    with pytest.raises(ValueError, match="revealed=1.5"):
        load_scenario("digits", revealed=1.5)
    with pytest.raises(ValueError, match="unknown bundled scenario 'mnist'"):
        load_scenario("mnist")


def test_pydocs_is_real_labelled_text():
    sc = load_scenario("pydocs", seed=0)
    names = [s.name for s in sc.sources]
    assert names == ["stdlib", "stdlib_noisy", "reference", "boilerplate"]
    stdlib = sc.source("stdlib")
    assert len(stdlib) > 300 and all(isinstance(t, str) and len(t) >= 40 for t in stdlib.samples())
    assert set(stdlib.labels) == {"text", "numeric", "files", "concurrency", "network", "data"}
    assert not set(sc.target.samples()) & set(stdlib.samples())
    assert set(sc.source("reference").labels) == {"language"}
    assert len(sc.source("boilerplate")) == 300
