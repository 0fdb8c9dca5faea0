"""k-means and pruning scores streamed from embedding stores equal the in-memory ones."""

import numpy as np
import pytest

from datamix.data import Source
from datamix.embed import embed
from datamix.engine import LocalEngine
from datamix.index import AssignShards, kmeans_on_stores, l2_normalize, spherical_kmeans
from datamix.index.kmeans import _assign_impl
from datamix.index.streaming import store_rows
from datamix.prune import score_stores
from datamix.prune.scoring import score_sources


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Three stores of clustered vectors (shards of 70 rows, last shards short)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 16))
    out, tmp = {}, tmp_path_factory.mktemp("stores")
    for name, n in (("a", 300), ("b", 451), ("c", 129)):
        X = (centers[rng.integers(6, size=n)] + 0.3 * rng.normal(size=(n, 16))).astype(np.float32)
        out[name] = embed(Source.from_arrays(name, X, labels=rng.integers(3, size=n)), store=tmp / name,
                          shard_size=70, progress=False)
    return out


def all_rows(stores):
    return np.concatenate([s.load() for s in stores.values()])


def test_store_rows_reads_exactly_the_rows_asked_for(stores):
    X = all_rows(stores)
    rows = np.array([0, 69, 70, 299, 300, 301, 750, 751, 879])
    np.testing.assert_array_equal(store_rows(list(stores.values()), rows), X[rows])
    assert store_rows(list(stores.values()), np.array([], dtype=int)).shape == (0, 16)


@pytest.mark.parametrize("n_train", [None, 60, 10_000])
def test_kmeans_on_stores_has_the_in_memory_centroids_and_clusters(stores, n_train):
    X = all_rows(stores)
    ref = spherical_kmeans(X, 6, n_train=n_train, seed=3)
    km = kmeans_on_stores(stores, 6, n_train=n_train, seed=3)
    np.testing.assert_array_equal(km.centroids, ref.centroids)  # same sample, same seed: bitwise
    np.testing.assert_array_equal(km.labels, ref.labels)
    # faiss searches one shard at a time here: equal up to the last float32 bits
    np.testing.assert_allclose(km.similarity, ref.similarity, rtol=0, atol=1e-6)
    assert km.n_train == ref.n_train and km.inertia == pytest.approx(ref.inertia, rel=1e-6)


def test_assign_step_gives_one_row_per_shard_and_its_clusters(stores):
    km = kmeans_on_stores(stores, 6, seed=0)
    tasks = [{"source": "b", "shard": k} for k in range(len(stores["b"].shards))]
    rows = list(LocalEngine().map_shards(AssignShards, tasks, stage="score",
                                         fn_kwargs={"stores": {"b": stores["b"].path}, "centroids": km.centroids}))
    assert [r["shard"] for r in rows] == list(range(7)) and [len(r["label"]) for r in rows] == [70] * 6 + [31]
    sim, labels = _assign_impl(l2_normalize(stores["b"].shard(6)), km.centroids, device="cpu")
    np.testing.assert_array_equal(rows[-1]["label"], labels)
    np.testing.assert_array_equal(rows[-1]["similarity"], sim)
    with pytest.raises(ValueError, match="one shard per call"):
        AssignShards({"b": stores["b"].path}, km.centroids)({"source": np.array(["b", "b"]), "shard": np.array([0, 1])})


def test_score_stores_matches_score_sources(stores):
    emb = {n: s.load() for n, s in stores.items()}
    ref = score_sources(emb, {n: None for n in stores}, metrics=["prototypes", "density"], n_clusters=6, seed=1)
    got = score_stores(stores, metrics=["prototypes", "density"], n_clusters=6, seed=1)
    assert list(got) == ["a", "b", "c"] and all(len(got[n]) == len(stores[n]) for n in stores)
    for n in stores:
        np.testing.assert_allclose(got[n]["prototypes"], ref[n]["prototypes"], rtol=0, atol=1e-6)
    # density = log(cluster share) - log(rank in cluster + 1/2): near-tied similarities may swap
    # ranks inside a cluster, the values over the union stay the same
    union = lambda t: np.sort(np.concatenate([t[n]["density"].to_numpy() for n in stores]))  # noqa: E731
    np.testing.assert_allclose(union(got), union(ref), rtol=0, atol=1e-6)


def test_score_stores_dynamics_and_semdedup_equal_the_in_memory_path(stores):
    labels = {n: (np.arange(len(s)) % 3) for n, s in stores.items()}
    opts = dict(metrics=["el2n", "margin"], semdedup_eps=0.05, dynamics_epochs=2, dynamics_seeds=[0], seed=0)
    ref = score_sources({n: s.load() for n, s in stores.items()}, labels, **opts)
    got = score_stores(stores, labels, **opts)
    for n in stores:
        assert list(got[n].columns) == list(ref[n].columns) == ["el2n", "margin", "semdedup_keep"]
        for c in ref[n].columns:
            np.testing.assert_array_equal(got[n][c].to_numpy(), ref[n][c].to_numpy())


def test_score_stores_bad_input(stores, tmp_path):
    with pytest.raises(ValueError, match=r"unknown metrics \['speed'\]"):
        score_stores(stores, metrics=["speed"])
    with pytest.raises(ValueError, match="need labels; sources"):
        score_stores(stores, metrics=["el2n"])
    other = embed(Source.from_arrays("d", np.ones((5, 3), dtype=np.float32)), store=tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="stores of different dimensions"):
        score_stores({"a": stores["a"], "d": other})
    with pytest.raises(ValueError, match="n_clusters=900 is larger than the number of samples"):
        kmeans_on_stores(stores, 900)
