import numpy as np
import pytest

from datamix.prune import prototype_scores
from datamix.prune.scoring import default_n_clusters, score_sources


def blobs(rng, n, center):
    return (rng.normal(size=(n, 8)) * 0.3 + center).astype(np.float32)


def test_scores_are_computed_on_the_union(rng):
    centers = rng.normal(size=(3, 8)) * 3
    emb = {"a": blobs(rng, 60, centers[0]), "b": blobs(rng, 40, centers[1])}
    labels = {"a": np.zeros(60, dtype=int), "b": np.ones(40, dtype=int)}
    out = score_sources(emb, labels, metrics=["prototypes", "el2n"], n_clusters=2, dynamics_epochs=3,
                        dynamics_seeds=[0], semdedup_eps=1e-6)
    assert list(out) == ["a", "b"] and len(out["a"]) == 60 and len(out["b"]) == 40
    union = prototype_scores(np.concatenate([emb["a"], emb["b"]]), 2, seed=0)
    np.testing.assert_allclose(np.concatenate([out["a"]["prototypes"], out["b"]["prototypes"]]), union)
    assert out["a"]["semdedup_keep"].all() and (out["a"]["el2n"] >= 0).all()


def test_semdedup_finds_duplicates_across_sources(rng):
    base = blobs(rng, 30, 0)
    out = score_sources({"a": base, "b": base + 1e-6}, {"a": None, "b": None}, metrics=["prototypes"],
                        n_clusters=3, semdedup_eps=1e-3)
    kept = out["a"]["semdedup_keep"].to_numpy() | out["b"]["semdedup_keep"].to_numpy()
    assert kept.all() and out["a"]["semdedup_keep"].sum() + out["b"]["semdedup_keep"].sum() == 30


def test_dynamics_metrics_need_labels(rng):
    with pytest.raises(ValueError, match=r"need labels; sources \['b'\] have none"):
        score_sources({"a": blobs(rng, 5, 0), "b": blobs(rng, 5, 1)}, {"a": np.zeros(5), "b": None},
                      metrics=["margin"])
    with pytest.raises(ValueError, match=r"unknown metrics \['loss'\]"):
        score_sources({"a": blobs(rng, 5, 0)}, {"a": None}, metrics=["loss"])


def test_default_number_of_clusters():
    assert default_n_clusters(1000, np.arange(1000) % 7) == 7
    assert default_n_clusters(400, None) == 20
    assert default_n_clusters(3, np.arange(3)) == 3
